"""Duplicate groups in an indexed gallery: exact copies by content, near copies by vector.

**Exact** groups are files with the same bytes (SHA-256), or the same decoded pixels in
another encoding (a JPEG saved again as PNG, a PNG as BMP, ...). Pixel equality is checked
only for candidate pairs of the same image size (read from the header), so few files are
decoded.

**Near** groups come from the engine's vectors at a threshold in its metric: every pair
within it (``pairs.candidate_pairs``, exact, without an N x N matrix). Groups are complete-linkage: two groups merge only if *every* pair across them is within
the threshold, so a line of neighbours (A~B~C, A far from C) never chains into one group.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .base import SearchEngine, check_threshold
from .errors import EmptyIndexError
from .items import GalleryItem
from .pairs import candidate_pairs, pair_scores
from .results import DuplicateGroup, GalleryVectors, SearchResult

KINDS = ("exact", "near")
#: Pairs this close in the engine's metric are always checked for pixel equality (exact
#: group), however strict the near threshold.
EXACT_TOLERANCE = 1e-4


def find_duplicates(engine: SearchEngine, threshold: float | None = None, metric: str | None = None) -> list[DuplicateGroup]:
    """Groups of copies in ``engine``'s index, largest first: exact ones, then near ones.

    Exact: the same file content, or the same decoded pixels in another encoding. Near:
    every two members within ``threshold`` in ``metric`` (default: the engine's
    ``duplicate_threshold`` for it). Reads files only to hash them (remembered) or to
    compare the pixels of candidate pairs of one size.
    """
    metric = engine.check_metric(metric)
    if threshold is None:
        threshold = engine.duplicate_threshold(metric)
    else:
        check_threshold(threshold)
    if len(engine) == 0:
        raise EmptyIndexError(engine.name)
    vectors = engine.vectors(content_hashes=True)
    return group_duplicates(vectors, metric, float(threshold), higher_is_better=metric in engine.higher_is_better)


def group_duplicates(
    vectors: GalleryVectors,
    metric: str,
    threshold: float,
    *,
    higher_is_better: bool,
) -> list[DuplicateGroup]:
    """Exact then near groups of ``vectors`` (largest first, each kind by its best score)."""
    n = len(vectors.items)
    if n < 2:
        return []
    matrix = np.asarray(vectors.matrix, dtype=np.float32)
    exact_bound = (1.0 - EXACT_TOLERANCE) if higher_is_better else EXACT_TOLERANCE
    loosest = min(threshold, exact_bound) if higher_is_better else max(threshold, exact_bound)
    pairs, scores = candidate_pairs(matrix, metric, loosest)

    # Exact: the same bytes, or the same decoded pixels (checked for candidate pairs only).
    hashes = vectors.hashes or (None,) * n  # unknown: only pixel equality makes exact groups
    exact = _UnionFind(n)
    by_hash: dict[str, int] = {}
    for row, digest in enumerate(hashes):
        if digest is not None:
            exact.union(by_hash.setdefault(digest, row), row)
    # Candidates for the same pixels: every pair within the near threshold (an engine may
    # decode JPEGs at a reduced size, so a lossless re-encode need not have an equal vector);
    # only pairs of the same image size are decoded.
    pixels = _PixelHashes(vectors.items)
    for a, b in pairs.tolist():
        if exact.find(a) != exact.find(b) and pixels.same(a, b):
            exact.union(a, b)
    exact_sets = exact.groups()
    groups = [
        _group("exact", members, vectors, metric, higher_is_better, matrix)
        for members in exact_sets if len(members) > 1
    ]

    # Near: complete linkage over one representative per exact set, best pairs first.
    passing = scores >= threshold if higher_is_better else scores <= threshold
    representative = {row: members[0] for members in exact_sets for row in members}
    rep_pairs: dict[tuple[int, int], float] = {}
    for (a, b), score in zip(pairs[passing], scores[passing], strict=True):
        ra, rb = representative[int(a)], representative[int(b)]
        if ra == rb:
            continue
        key = (min(ra, rb), max(ra, rb))
        previous = rep_pairs.get(key)
        # The worst pair between two exact sets decides (complete linkage).
        if previous is None or (score < previous if higher_is_better else score > previous):
            rep_pairs[key] = float(score)
    # Every member pair of two exact sets must pass, not only the first ones found.
    members_of = {members[0]: members for members in exact_sets}
    passed = {(a, b) for a, b in pairs[passing].tolist()} if any(len(m) > 1 for m in exact_sets) else set()
    complete = {
        key for key in rep_pairs
        if all((min(a, b), max(a, b)) in passed for a in members_of[key[0]] for b in members_of[key[1]])
        or len(members_of[key[0]]) == len(members_of[key[1]]) == 1
    }
    for members in _complete_linkage(rep_pairs, complete, higher_is_better):
        rows = [row for rep in members for row in members_of[rep]]
        groups.append(_group("near", rows, vectors, metric, higher_is_better, matrix))
    groups.sort(key=lambda g: (KINDS.index(g.kind), -len(g.members), -g.score if higher_is_better else g.score))
    return groups


def _complete_linkage(
    pair_scores: dict[tuple[int, int], float], allowed: set[tuple[int, int]], higher_is_better: bool
) -> list[list[int]]:
    """Groups in which every two members are a passing pair, merged best pair first."""
    neighbours: dict[int, set[int]] = {}
    for a, b in allowed:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    group_of: dict[int, list[int]] = {}
    ordered = sorted(allowed, key=lambda key: -pair_scores[key] if higher_is_better else pair_scores[key])
    for a, b in ordered:
        left = group_of.get(a, [a])
        right = group_of.get(b, [b])
        if left is right:
            continue
        if all(other in neighbours[member] for member in left for other in right):
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


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        found: dict[int, list[int]] = {}
        for row in range(len(self.parent)):
            found.setdefault(self.find(row), []).append(row)
        return list(found.values())


class _PixelHashes:
    """Image sizes (from the header) and SHA-256 of decoded RGB pixels, each read once."""

    def __init__(self, items: Sequence[GalleryItem]) -> None:
        self.items = items
        self.sizes: dict[int, tuple[int, int] | None] = {}
        self.known: dict[int, str | None] = {}

    def size(self, row: int) -> tuple[int, int] | None:
        if row not in self.sizes:
            item = self.items[row]
            try:
                with Image.open(item.checked_path() if item.path is not None else io.BytesIO(item.data or b"")) as image:
                    self.sizes[row] = image.size
            except Exception:  # noqa: BLE001 - a file gone or unreadable since indexing is not an exact copy
                self.sizes[row] = None
        return self.sizes[row]

    def of(self, row: int) -> str | None:
        if row not in self.known:
            try:
                image = self.items[row].open()
            except Exception:  # noqa: BLE001 - as above
                self.known[row] = None
            else:
                digest = hashlib.sha256(f"{image.size}".encode())
                digest.update(image.tobytes())
                self.known[row] = digest.hexdigest()
        return self.known[row]

    def same(self, a: int, b: int) -> bool:
        size = self.size(a)
        if size is None or size != self.size(b):
            return False
        first = self.of(a)
        return first is not None and first == self.of(b)


def _group(
    kind: str, rows: Sequence[int], vectors: GalleryVectors, metric: str, higher_is_better: bool, matrix: np.ndarray
) -> DuplicateGroup:
    rows = sorted(rows, key=lambda row: (vectors.items[row].path or "", vectors.items[row].position))
    if kind == "exact":  # the same content: similarity 1 or distance 0 by definition
        to_first = np.full(len(rows), 1.0 if higher_is_better else 0.0)
    else:
        to_first = pair_scores(matrix, np.array([[rows[0], row] for row in rows], dtype=np.int64), metric)
    members = tuple(
        SearchResult(rank, vectors.items[row].label, float(score), vectors.items[row].path,
                     vectors.items[row].position, vectors.records[row])
        for rank, (row, score) in enumerate(zip(rows, to_first, strict=True), start=1)
    )
    if kind == "exact":
        worst = 1.0 if higher_is_better else 0.0
    else:
        all_pairs = np.array([[a, b] for i, a in enumerate(rows) for b in rows[i + 1 :]], dtype=np.int64)
        values = pair_scores(matrix, all_pairs, metric)
        worst = float(values.min() if higher_is_better else values.max())
    return DuplicateGroup(kind, members, worst)
