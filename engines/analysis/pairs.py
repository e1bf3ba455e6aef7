"""Pairs of vectors within a threshold, found blockwise without an N x N matrix.

The vectors are moved to a space where the threshold bounds the Euclidean distance (l1 and
l2 as they are, since l2 <= l1; cosine and correlation on unit, or centred unit, rows), then
projected by PCA to a few dimensions. An orthogonal projection never lengthens a distance,
so every pair within the threshold is among the pairs found in the projection; each of
those is then checked in full.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import InvalidQueryError, TooManyCandidatesError
from ..metrics import SIMILARITIES, unit_rows

#: Dimensions the candidate search runs in: enough to keep unrelated pairs apart, few
#: enough that 100,000 vectors take seconds (benchmarks/duplicates.py).
PROJECTED_DIMS = 64
#: Rows per block of the pair search: one block is BLOCK_ROWS x N float32 (400 MB at 100,000 images).
BLOCK_ROWS = 1024
#: More candidate pairs than this means the threshold admits most of the gallery: refused,
#: so memory stays bounded.
MAX_CANDIDATES = 5_000_000


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


def neighbour_pairs(matrix: np.ndarray, metric: str, k: int) -> np.ndarray:
    """Each row's ``k`` nearest rows (approximately: in the PCA projection of the metric's
    Euclidean space) as pairs (i < j), without duplicates: candidates whatever their distance."""
    n = matrix.shape[0]
    if n < 2 or k < 1:
        return np.empty((0, 2), dtype=np.int64)
    space, _ = _euclidean_space(matrix, metric, 0.0 if metric in {"l1", "l2"} else 1.0)
    projected = _project(space)
    sq = np.einsum("ij,ij->i", projected, projected)
    k = min(k, n - 1)
    found = []
    for start in range(0, n, BLOCK_ROWS):
        block = projected[start : start + BLOCK_ROWS]
        distances = sq[start : start + len(block), None] - 2 * block @ projected.T + sq[None, :]
        distances[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(start, start + len(block)), k)
        found.append(np.stack([rows, nearest.reshape(-1)], axis=1))
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0).astype(np.int64)


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
    try:
        import torch  # noqa: PLC0415 - where installed (for CLIP): fast low-precision products
    except ImportError:  # an install without PyTorch: the same pairs from numpy's float32 products
        plain = np.ascontiguousarray(rows, dtype=np.float32)
        return _scan(plain.shape[0], lambda start, stop: plain[start:stop] @ plain[start:].T, similarity - 1e-5,
                     threshold, metric)
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
            raise TooManyCandidatesError(threshold, metric, n, MAX_CANDIDATES
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


class UnionFind:
    """Disjoint sets of rows (exact-copy sets), merged pair by pair."""

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
