"""Duplicate groups in an indexed gallery: exact copies by content, near copies by vector.

**Exact** groups are files with the same bytes (SHA-256), or the same decoded pixels in
another encoding (a JPEG saved again as PNG, a PNG as BMP, ...). Pixel equality is checked
only for candidate pairs of the same image size (read from the header), so few files are
decoded.

**Near** groups come from the engine's vectors at a threshold in its metric: every pair
within it (``pairs.candidate_pairs``, exact, without an N x N matrix). Verified (the
default where OpenCV is installed), the threshold is a loose one that finds candidates, with
each image's nearest few and the pairs that share keypoints (``shared_keypoints.py``), and
each candidate pair must be the same photo by local features and one geometry (``verify.py``):
an edited copy, not merely a similar picture. Groups are complete-linkage (``linkage.py``):
two groups merge only if *every* pair across them passes, so a line of neighbours (A~B~C, A
far from C) never chains into one group. A near group leads with the copy to keep (``keeper.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..base import SearchEngine, check_threshold
from ..errors import EmptyIndexError
from ..results import DuplicateGroup, GalleryVectors, SearchResult
from .keeper import keeper_of
from .linkage import complete_linkage
from .local_features import LocalFeatures
from .matches import Match
from .pairs import UnionFind, candidate_pairs, neighbour_pairs, pair_scores
from .pixel_hashes import PixelHashes
from .verify import PairVerifier, opencv_available

KINDS = ("exact", "near")
#: With verification, each image's nearest few are candidates too, however far (benchmarks/duplicates.py).
NEIGHBOURS = 5
#: ... and each image is verified against its closest this many candidates at most.
MAX_VERIFIED = 10
#: Pairs this close in the engine's metric are always checked for pixel equality (exact
#: group), however strict the near threshold.
EXACT_TOLERANCE = 1e-4


def find_duplicates(
    engine: SearchEngine, threshold: float | None = None, metric: str | None = None, *, verify: bool | None = None,
) -> list[DuplicateGroup]:
    """Groups of copies in ``engine``'s index, largest first: exact ones, then near ones.

    Exact: the same file content, or the same decoded pixels in another encoding. Near, with
    ``verify`` (the default where OpenCV is installed): pairs within a loose ``threshold``
    (default: the engine's ``candidate_threshold``) confirmed as the same photo by local
    features and one geometry (``engines.analysis.verify``); without: every two members within
    ``threshold`` (default: the engine's ``duplicate_threshold``). Reads files only to hash
    them (remembered), to compare the pixels of candidate pairs of one size, and for the
    keypoints of candidates (kept in the cache folder).
    """
    metric = engine.check_metric(metric)
    if verify is None:
        verify = opencv_available()
    if threshold is None:
        threshold = engine.candidate_threshold(metric) if verify else engine.duplicate_threshold(metric)
    else:
        check_threshold(threshold)
    if len(engine) == 0:
        raise EmptyIndexError(engine.name)
    vectors = engine.vectors(content_hashes=True)
    verifier = None
    cache_dir = engine.local_features_dir()  # the cache folder: keypoints and pixel hashes, by content
    if verify:
        verifier = PairVerifier(vectors.items, LocalFeatures(cache_dir), vectors.hashes)

    return group_duplicates(vectors, metric, float(threshold), higher_is_better=metric in engine.higher_is_better,
                            verifier=verifier, cache_dir=cache_dir)


def group_duplicates(
    vectors: GalleryVectors,
    metric: str,
    threshold: float,
    *,
    higher_is_better: bool,
    verifier: PairVerifier | None = None,
    cache_dir: Path | None = None,
) -> list[DuplicateGroup]:
    """Exact then near groups of ``vectors`` (largest first, each kind by its best score);
    ``verifier`` gives the candidate pairs that are one photo (and how), and only those are near;
    pixel hashes are kept in ``cache_dir`` (``None``: not kept)."""
    n = len(vectors.items)
    if n < 2:
        return []
    matrix = np.asarray(vectors.matrix, dtype=np.float32)
    exact_bound = (1.0 - EXACT_TOLERANCE) if higher_is_better else EXACT_TOLERANCE
    loosest = min(threshold, exact_bound) if higher_is_better else max(threshold, exact_bound)
    # A large gallery's inverted lists (cosine over unit vectors) give the candidates list by list
    # (a million photos: seconds, where the exact pass is an N x N one); a copy lies in its original's list.
    lists = vectors.lists if metric == "cosine" else None
    if lists is not None:
        pairs = lists.near_pairs(loosest)
        scores = pair_scores(matrix, pairs, metric)
    else:
        pairs, scores = candidate_pairs(matrix, metric, loosest)

    # Exact: the same bytes, or the same decoded pixels (checked for candidate pairs only).
    hashes = vectors.hashes or (None,) * n  # unknown: only pixel equality makes exact groups
    exact = UnionFind(n)
    by_hash: dict[str, int] = {}
    for row, digest in enumerate(hashes):
        if digest is not None:
            exact.union(by_hash.setdefault(digest, row), row)
    # Candidates for the same pixels: every pair within the near threshold (an engine may
    # decode JPEGs at a reduced size, so a lossless re-encode need not have an equal vector);
    # only pairs of the same image size are decoded.
    pixels = PixelHashes(vectors.items, vectors.hashes, cache_dir)
    asked = [(a, b) for a, b in pairs.tolist() if exact.find(a) != exact.find(b)]
    pixels.prepare(asked)
    for a, b in asked:
        if exact.find(a) != exact.find(b) and pixels.same(a, b):
            exact.union(a, b)
    pixels.save()
    exact_sets = exact.groups()
    groups = [
        _group("exact", members, vectors, metric, higher_is_better, matrix)
        for members in exact_sets if len(members) > 1
    ]

    # Near: complete linkage over one representative per exact set, best pairs first.
    passing = scores >= threshold if higher_is_better else scores <= threshold
    verified: dict[tuple[int, int], Match] = {}
    if verifier is not None:
        # Candidates: the pairs within the loose threshold, and each image's nearest few
        # whatever their distance (a crop or a rotation moves raw pixels far).
        extra = lists.neighbour_pairs(NEIGHBOURS) if lists is not None else neighbour_pairs(matrix, metric, NEIGHBOURS)
        # ... and pairs that share many keypoints, which vectors of whole pictures can put far
        # apart (a screenshot with its borders); one picture per exact set takes part.
        representatives = sorted({members[0] for members in exact_sets})
        shared = verifier.candidates(representatives)
        extra = np.unique(np.concatenate([extra, shared]), axis=0)
        known = {(int(a), int(b)) for a, b in pairs.tolist()}
        extra = np.array([pair for pair in extra.tolist() if tuple(pair) not in known], dtype=np.int64).reshape(-1, 2)
        if len(extra):
            pairs = np.concatenate([pairs, extra])
            scores = np.concatenate([scores, pair_scores(matrix, extra, metric)])
            passing = np.concatenate([passing, np.ones(len(extra), dtype=bool)])
        # Pairs inside one exact set are copies already; the others are checked by geometry:
        # every pair sharing keypoints (few by construction: the strongest evidence), then by
        # vector each image's closest MAX_VERIFIED partners at most (a threshold that admits
        # most of a gallery would otherwise cost N x N checks).
        asked = [(int(a), int(b)) for a, b in shared.tolist() if exact.find(a) != exact.find(b)]
        taken: dict[int, int] = {}
        for a, b in asked:
            taken[a], taken[b] = taken.get(a, 0) + 1, taken.get(b, 0) + 1
        first = set(asked)
        candidates = np.flatnonzero(passing)
        order = candidates[np.argsort(-scores[candidates] if higher_is_better else scores[candidates], kind="stable")]
        for a, b in pairs[order].tolist():
            if (a, b) in first:
                continue
            if exact.find(a) == exact.find(b) or taken.get(a, 0) >= MAX_VERIFIED or taken.get(b, 0) >= MAX_VERIFIED:
                continue
            asked.append((int(a), int(b)))
            taken[a], taken[b] = taken.get(a, 0) + 1, taken.get(b, 0) + 1
        verified = verifier(asked)
        confirmed = np.array([exact.find(a) == exact.find(b) or (int(a), int(b)) in verified
                              for a, b in pairs.tolist()], dtype=bool)
        passing &= confirmed
    representative = {row: members[0] for members in exact_sets for row in members}
    rep_pairs: dict[tuple[int, int], float] = {}
    # Verified pairs link by their inliers (most first: the surest copies group first).
    linked_by = ([float(_inliers(verified, int(a), int(b))) for a, b in pairs[passing].tolist()]
                 if verifier is not None else scores[passing])
    higher = higher_is_better or verifier is not None
    for (a, b), score in zip(pairs[passing], linked_by, strict=True):
        ra, rb = representative[int(a)], representative[int(b)]
        if ra == rb:
            continue
        key = (min(ra, rb), max(ra, rb))
        previous = rep_pairs.get(key)
        # The worst pair between two exact sets decides (complete linkage).
        if previous is None or (score < previous if higher else score > previous):
            rep_pairs[key] = float(score)
    # Every member pair of two exact sets must pass, not only the first ones found.
    members_of = {members[0]: members for members in exact_sets}
    passed = {(a, b) for a, b in pairs[passing].tolist()} if any(len(m) > 1 for m in exact_sets) else set()
    complete = {
        key for key in rep_pairs
        if all((min(a, b), max(a, b)) in passed for a in members_of[key[0]] for b in members_of[key[1]])
        or len(members_of[key[0]]) == len(members_of[key[1]]) == 1
    }
    ask = None
    if verifier is not None:
        def ask(missing: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
            # Representatives stand for their exact sets: the other members are the same picture.
            found = verifier(missing)
            verified.update(found)
            return {pair: float(match.inliers) for pair, match in found.items()}

    for members in complete_linkage(rep_pairs, complete, higher, ask):
        rows = [row for rep in members for row in members_of[rep]]
        group = _group("near", rows, vectors, metric, higher_is_better, matrix)
        if verifier is not None:
            group = _with_matches(group, rows, vectors, verified)
        groups.append(group)
    groups.sort(key=lambda g: (KINDS.index(g.kind), -len(g.members), -g.score if higher_is_better else g.score))
    return groups


def _inliers(verified: dict[tuple[int, int], Match], a: int, b: int) -> int:
    found = verified.get((a, b))
    return found.inliers if found is not None else 0


def _with_matches(group: DuplicateGroup, rows: Sequence[int], vectors: GalleryVectors,
                  verified: dict[tuple[int, int], Match]) -> DuplicateGroup:
    """``group`` with how its pairs were verified: the fewest inliers, and each member's match
    with the first member (the part of each picture the other shows, the edit in words)."""
    counts = [verified[(a, b)].inliers for a, b in itertools.combinations(sorted(rows), 2) if (a, b) in verified]
    row_of = {vectors.records[row]: row for row in rows}
    members = [row_of[m.record] for m in group.members]
    first = members[0]
    to_first: list[Match | None] = []
    for row in members[1:]:
        found = verified.get((first, row)) or verified.get((row, first))
        to_first.append(found if found is None or (first, row) in verified else found.swapped())
    shown = [m.shown_in_a for m in to_first if m is not None]
    # The first member's region: all that the others show of it.
    own = (min(b[0] for b in shown), min(b[1] for b in shown), max(b[2] for b in shown), max(b[3] for b in shown)) \
        if shown else None
    return replace(group, inliers=min(counts) if counts else None,
                   regions=(own, *(m.shown_in_b if m is not None else None for m in to_first)),
                   edits=("", *(m.edit() if m is not None else "" for m in to_first)))


def _group(
    kind: str, rows: Sequence[int], vectors: GalleryVectors, metric: str, higher_is_better: bool, matrix: np.ndarray
) -> DuplicateGroup:
    rows = sorted(rows, key=lambda row: (vectors.items[row].path or "", vectors.items[row].position))
    if kind == "near":  # the copy to keep leads: scores, matched regions and edits are told against it
        lead = keeper_of([vectors.items[row] for row in rows])
        rows = [rows[lead], *rows[:lead], *rows[lead + 1 :]]
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
