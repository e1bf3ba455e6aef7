"""Duplicate groups in an indexed gallery: exact copies by content, near copies by vector.

**Exact** groups are files with the same bytes (SHA-256), or the same decoded pixels in
another encoding (a JPEG saved again as PNG, a PNG as BMP, ...). Pixel equality is checked
only for candidate pairs of the same image size (read from the header), so few files are
decoded.

**Near** groups come from the engine's vectors at a threshold in its metric. Pairs are
found blockwise without an N x N matrix: the vectors are moved to a space where the
threshold bounds the Euclidean distance (l1 and l2 as they are, since l2 <= l1; cosine and
correlation on unit, or centred unit, rows), then projected by PCA to a few dimensions.
An orthogonal projection never lengthens a distance, so every pair within the threshold
is among the pairs found in the projection; each of those is then checked in full.
Groups are complete-linkage: two groups merge only if *every* pair across them is within
the threshold, so a line of neighbours (A~B~C, A far from C) never chains into one group.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import InvalidQueryError
from .gallery import GalleryItem
from .metrics import SIMILARITIES, unit_rows
from .results import SearchResult

KINDS = ("exact", "near")
#: Dimensions the candidate search runs in: enough to keep unrelated pairs apart, few
#: enough that 100,000 vectors take seconds (benchmarks/duplicates.py).
PROJECTED_DIMS = 64
#: Rows per block of the pair search: one block is BLOCK_ROWS x N float32 (400 MB at 100,000 images).
BLOCK_ROWS = 1024
#: More candidate pairs than this means the threshold admits most of the gallery: refused,
#: so memory stays bounded.
MAX_CANDIDATES = 5_000_000
#: Pairs this close in the engine's metric are always checked for pixel equality (exact
#: group), however strict the near threshold.
EXACT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class DuplicateGroup:
    """A set of gallery images that are copies of one another.

    ``members`` are ordinary results: ``rank`` is the place in the group, ``score`` the
    metric from the first member (0 distance, or similarity 1, for exact copies), and
    ``record`` lets a member be used as a query. ``score`` of the group is its worst pair.
    """

    kind: str
    members: tuple[SearchResult, ...]
    score: float


@dataclass(frozen=True)
class GalleryVectors:
    """An engine's indexed gallery as one matrix, with the item and record of each row."""

    matrix: np.ndarray
    items: tuple[GalleryItem, ...]
    records: tuple[str, ...]
    #: SHA-256 of each item's file, where known (``SearchEngine.duplicates`` fills it in).
    hashes: tuple[str | None, ...] | None = None


def find_duplicates(
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


def candidate_pairs(matrix: np.ndarray, metric: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) within ``threshold`` in ``metric``, and its score, blockwise."""
    space, radius = _euclidean_space(matrix, metric, threshold)
    if radius < 0 or len(space) < 2:
        return np.empty((0, 2), dtype=np.int64), np.empty(0)
    if metric in SIMILARITIES and space.shape[1] > PROJECTED_DIMS:
        found = _similar_unit_rows(space, 1.0 - radius * radius / 2.0, threshold, metric)
    else:
        found = _near_rows(_project(space), radius, threshold, metric)
    if not len(found):
        return found, np.empty(0)
    scores = pair_scores(matrix, found, metric)
    keep = scores >= threshold if metric in SIMILARITIES else scores <= threshold
    return found[keep], scores[keep]


def _near_rows(projected: np.ndarray, radius: float, threshold: float, metric: str) -> np.ndarray:
    """Pairs within ``radius`` (l2) of each other: one float32 product per block of rows."""
    n = projected.shape[0]
    # Augmented rows make one product the squared distance: [x, |x|^2, 1] . [-2y, 1, |y|^2].
    sq = np.einsum("ij,ij->i", projected, projected)
    left = np.hstack([projected, sq[:, None], np.ones((n, 1), np.float32)]).astype(np.float32)
    right = np.ascontiguousarray(np.hstack([-2 * projected, np.ones((n, 1), np.float32), sq[:, None]]).T, np.float32)
    # Rounding in float32 can put an equal pair slightly above 0: a small absolute slack.
    bound = radius * radius * (1 + 1e-4) + 1e-5 * (1 + float(sq.max(initial=0.0)))
    buffer = np.empty(min(BLOCK_ROWS, n) * n, dtype=np.float32)

    def block(start: int, stop: int) -> np.ndarray:
        out = buffer[: (stop - start) * (n - start)].reshape(stop - start, n - start)
        np.matmul(left[start:stop], right[:, start:], out=out)
        np.negative(out, out=out)  # the scan keeps values at least its bound
        return out

    return _scan(n, block, -bound, threshold, metric)


def _similar_unit_rows(rows: np.ndarray, similarity: float, threshold: float, metric: str) -> np.ndarray:
    """Pairs of unit rows with a dot product of at least ``similarity``, in the full dimensions.

    A projection would keep the classes of a gallery apart but pull the images inside a
    class together, making most of a class candidates; the full product is exact. With
    bfloat16 matrix units (AMX) it is several times faster than float32; its rounding
    moves a dot product of unit vectors by less than 2^-7, so the bound is lowered by 0.01
    and every candidate is checked again in float32.
    """
    import torch  # noqa: PLC0415 - installed for CLIP; fast low-precision products

    fast = torch.cpu._is_amx_tile_supported()
    tensor = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    if fast:
        tensor = tensor.to(torch.bfloat16)
    bound = similarity - (0.01 if fast else 1e-5)
    n = rows.shape[0]

    def block(start: int, stop: int) -> np.ndarray:
        with torch.no_grad():
            return (tensor[start:stop] @ tensor[start:].T).float().numpy()

    return _scan(n, block, bound, threshold, metric)


def _scan(n: int, product: Callable[[int, int], np.ndarray], bound: float, threshold: float, metric: str) -> np.ndarray:
    """The pairs (i < j) whose ``product`` value is at least ``bound``, a block of rows at a time."""
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []
    total = 0
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        block = product(start, stop)  # rows start..stop against columns start..n
        height = stop - start
        block[np.arange(height), np.arange(height)] = -np.inf  # an image is not its own copy
        for row in np.flatnonzero(block.max(axis=1) >= bound):
            columns = np.flatnonzero(block[row, row + 1 :] >= bound) + row + 1  # each pair once
            if columns.size:
                found_a.append(np.full(columns.size, start + row))
                found_b.append(start + columns)
                total += columns.size
        if total > MAX_CANDIDATES:
            raise InvalidQueryError(
                f"Expected a stricter duplicate threshold: {threshold:g} ({metric}) makes more than "
                f"{MAX_CANDIDATES:,} pairs of this {n:,}-image gallery candidates"
            )
    if not found_a:
        return np.empty((0, 2), dtype=np.int64)
    return np.stack([np.concatenate(found_a), np.concatenate(found_b)], axis=1)


def pair_scores(matrix: np.ndarray, pairs: np.ndarray, metric: str, chunk: int = 4096) -> np.ndarray:
    """The metric between the two rows of each pair, in the full vectors."""
    out = np.empty(len(pairs))
    for start in range(0, len(pairs), chunk):
        a = matrix[pairs[start : start + chunk, 0]]
        b = matrix[pairs[start : start + chunk, 1]]
        if metric == "l1":
            values = np.abs(a - b).sum(axis=1, dtype=np.float64)
        elif metric == "l2":
            values = np.sqrt(np.square(a - b).sum(axis=1, dtype=np.float64))
        else:
            a, b = a.astype(np.float64), b.astype(np.float64)
            if metric == "correlation":
                a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
            norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
            dots = np.einsum("ij,ij->i", a, b)
            values = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        out[start : start + len(a)] = values
    return out


def _euclidean_space(matrix: np.ndarray, metric: str, threshold: float) -> tuple[np.ndarray, float]:
    """Rows and a radius such that a pair within ``threshold`` is within the radius there."""
    if metric == "l2":
        return matrix, float(threshold)
    if metric == "l1":
        # |d|_2 <= |d|_1, and |d|_2^2 <= |d|_1 max|d_i|: with coordinates spanning at most R,
        # a radius of sqrt(R t) (the exact Hamming bound for bits, where R = 1).
        spread = float((matrix.max(axis=0) - matrix.min(axis=0)).max(initial=0.0))
        return matrix, min(float(threshold), math.sqrt(max(spread, 0.0) * max(float(threshold), 0.0)))
    if metric not in SIMILARITIES:
        raise InvalidQueryError(f"Expected metric l1, l2, cosine, correlation or ip, got {metric!r}")
    rows = unit_rows(matrix, metric)
    # For unit rows |a - b|^2 = 2 - 2 cos; a similarity above 1 admits nothing.
    if threshold > 1:
        return rows, -1.0
    return rows, math.sqrt(max(0.0, 2.0 - 2.0 * threshold))


def _project(space: np.ndarray) -> np.ndarray:
    """The rows in at most PROJECTED_DIMS orthonormal directions (PCA on a sample)."""
    n, dims = space.shape
    if dims <= PROJECTED_DIMS:
        return np.ascontiguousarray(space, dtype=np.float32)
    from sklearn.decomposition import PCA  # noqa: PLC0415 - heavy; only when duplicates are asked for

    sample = space if n <= 20_000 else space[np.random.default_rng(0).choice(n, 20_000, replace=False)]
    components = min(PROJECTED_DIMS, sample.shape[0])
    pca = PCA(n_components=components, svd_solver="randomized", random_state=0).fit(sample)
    # Project without centring: a translation changes no distance, and the components are orthonormal.
    return np.ascontiguousarray(space @ pca.components_.T.astype(np.float32), dtype=np.float32)


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
