"""How a feature vector's numbers group into neighbouring pixels or colour bins, so that block
sums bound every metric from below (``vector_index.VectorIndex`` skips rows with them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Blocks:
    """How a feature vector is laid out (``shape``, e.g. (32, 32, 3) for a small RGB image)
    and the block sizes, coarse to fine, whose sums bound each metric from below.

    Summing a vector over blocks of ``b`` values cannot lengthen a distance: for any
    difference ``d``, ``sum|block sums of d| <= |d|_1`` and ``|block sums of d|^2 / b <=
    |d|_2^2``. Neighbouring pixels are alike, so a photo's 8x8 block means keep most of
    what tells it from another, and a search can skip the rows those bounds rule out
    without computing them (Faloutsos' GEMINI lower-bounding). Results stay exact.
    """

    shape: tuple[int, ...]
    sizes: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        for size in self.sizes:
            if len(size) != len(self.shape) or any(n % b for n, b in zip(self.shape, size, strict=True)):
                raise ValueError(f"Expected block sizes dividing {self.shape}, got {size}")

    def summed(self, rows: np.ndarray, level: int) -> np.ndarray:
        """Block sums of ``rows`` (float32, one row per vector) at ``level``."""
        out = np.asarray(rows, dtype=np.float32).reshape(rows.shape[0], *self.shape)
        for axis, b in enumerate(self.sizes[level], start=1):
            if b == 1:
                continue
            out = out.reshape(*out.shape[:axis], out.shape[axis] // b, b, *out.shape[axis + 1 :])
            # b slice additions: numpy's reduce over an inner axis is ~8x slower here.
            total = np.take(out, 0, axis=axis + 1)  # a copy, added to in place
            for j in range(1, b):
                total += np.take(out, j, axis=axis + 1)
            out = total
        return out.reshape(rows.shape[0], -1)

    def block_size(self, level: int) -> int:
        return int(np.prod(self.sizes[level]))
