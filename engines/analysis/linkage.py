"""Complete linkage over pairs: groups in which every two members passed."""

from __future__ import annotations

from collections.abc import Callable

#: Pairs a merge of two verified groups may check that were not candidates (more: no merge).
MAX_ASKED_PER_MERGE = 16


def complete_linkage(
    pair_scores: dict[tuple[int, int], float], allowed: set[tuple[int, int]], higher_is_better: bool,
    ask: Callable[[list[tuple[int, int]]], dict[tuple[int, int], float]] | None = None,
) -> list[list[int]]:
    """Groups in which every two members are a passing pair, merged best pair first.

    ``ask`` checks pairs that were never candidates (verification): a crop and a rotated copy
    of one photo are each near the original, rarely near each other in the vectors, and both
    belong with it only if they are also one photo to each other."""
    neighbours: dict[int, set[int]] = {}
    for a, b in allowed:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    group_of: dict[int, list[int]] = {}
    ordered = sorted(allowed, key=lambda key: -pair_scores[key] if higher_is_better else pair_scores[key])
    asked: set[tuple[int, int]] = set()
    for a, b in ordered:
        left = group_of.get(a, [a])
        right = group_of.get(b, [b])
        if left is right:
            continue
        missing = [(min(m, o), max(m, o)) for m in left for o in right if o not in neighbours.get(m, ())]
        if missing and ask is not None and len(missing) <= MAX_ASKED_PER_MERGE and not asked.issuperset(missing):
            fresh = [pair for pair in missing if pair not in asked]
            asked.update(fresh)
            for x, y in ask(fresh):
                neighbours.setdefault(x, set()).add(y)
                neighbours.setdefault(y, set()).add(x)
            missing = [(m, o) for m, o in missing if o not in neighbours.get(m, ())]
        if not missing:
            merged = left + right
            for member in merged:
                group_of[member] = merged
    seen: set[int] = set()
    result = []
    for members in group_of.values():
        if id(members) not in seen:
            seen.add(id(members))
            result.append(sorted(members))
    return result
