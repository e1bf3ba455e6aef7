"""Spherical k-means for the inverted lists (``engines/ivf.py``): centroids of unit length,
trained on a sample of the gallery, rows assigned to their nearest centroid a block at a time."""

from __future__ import annotations

import numpy as np

#: Rows compared with all centroids at once while assigning (a float32 block of rows x nlist).
ASSIGN_ROWS = 8192
#: k-means rounds, on a sample of ``SAMPLE_PER_LIST`` rows per list.
ROUNDS = 8
SAMPLE_PER_LIST = 32


def _normalised(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def assign(matrix: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each row's nearest centroid (largest dot product), in blocks."""
    out = np.empty(len(matrix), dtype=np.int32)
    for start in range(0, len(matrix), ASSIGN_ROWS):
        block = np.asarray(matrix[start : start + ASSIGN_ROWS], dtype=np.float32)
        out[start : start + len(block)] = np.argmax(block @ centroids.T, axis=1)
    return out


def train(matrix: np.ndarray, nlist: int, seed: int = 0) -> np.ndarray:
    """Spherical k-means centroids (unit length) of a sample of ``matrix``'s rows."""
    rng = np.random.default_rng(seed)
    size = min(len(matrix), nlist * SAMPLE_PER_LIST)
    sample = _normalised(np.asarray(matrix[np.sort(rng.choice(len(matrix), size, replace=False))], dtype=np.float32))
    centroids = sample[rng.choice(size, nlist, replace=False)].copy()
    for _ in range(ROUNDS):
        owner = assign(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, owner, sample)
        counts = np.bincount(owner, minlength=nlist)
        empty = np.flatnonzero(counts == 0)
        sums[empty] = sample[rng.choice(size, len(empty), replace=False)]  # reseeded where no row went
        centroids = _normalised(sums).astype(np.float32)
    return centroids
