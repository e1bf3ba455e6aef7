"""The four textbook comparison metrics, vectorised over a whole gallery matrix.

Shared by the pixel and CLIP engines: both hold their gallery as one float32 matrix
(one row per image) and answer a query with a few numpy operations over it.

Degenerate vectors have documented, finite scores: cosine similarity with an all-zero
vector is 0, and the correlation coefficient with a constant vector (zero variance) is 0:
"no linear relation", never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FeatureMatrix = npt.NDArray[np.float32]
FeatureVector = npt.NDArray[np.float32]

METRICS: tuple[str, ...] = ("l1", "l2", "cosine", "correlation")


def _unit_rows(matrix: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 0, matrix / np.where(norms > 0, norms, 1), 0)
    return unit.astype(np.float32)


def _centered(matrix: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    return matrix - matrix.mean(axis=-1, keepdims=True)


@dataclass
class VectorIndex:
    """A gallery matrix with the per-row terms each metric needs, computed once.

    Precomputing unit rows (cosine), centred unit rows (correlation) and squared norms
    (l2) turns every query into one matrix-vector product.
    """

    matrix: FeatureMatrix
    _derived: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2:
            raise ValueError(f"Expected a 2-D feature matrix, got shape {self.matrix.shape}")

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def _get(self, name: str) -> np.ndarray:
        # Built lazily and only once per metric; a dict assignment is atomic, so two
        # threads racing here at worst compute the same array twice.
        cached = self._derived.get(name)
        if cached is None:
            if name == "unit":
                cached = _unit_rows(self.matrix)
            elif name == "centered_unit":
                cached = _unit_rows(_centered(self.matrix.astype(np.float64)))
            elif name == "sq_norms":
                cached = np.einsum("ij,ij->i", self.matrix, self.matrix, dtype=np.float64)
            else:  # pragma: no cover - internal names only
                raise KeyError(name)
            self._derived[name] = cached
        return cached

    def scores(self, query: FeatureVector, metric: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The metric between ``query`` and every row (or only ``rows``), as float64."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.matrix.shape[1]:
            raise ValueError(
                f"Expected a query vector of size {self.matrix.shape[1]}, got {query.shape[0]}"
            )
        take = (lambda a: a) if rows is None else (lambda a: a[rows])
        if metric == "l1":
            return np.abs(take(self.matrix) - query).sum(axis=1, dtype=np.float64)
        if metric == "l2":
            # |x-q|^2 = |x|^2 - 2 x.q + |q|^2; clamp the rounding that can dip below 0.
            q64 = query.astype(np.float64)
            squared = take(self._get("sq_norms")) - 2.0 * (take(self.matrix) @ query) + q64 @ q64
            return np.sqrt(np.maximum(squared, 0.0))
        if metric == "cosine":
            return (take(self._get("unit")) @ _unit_rows(query)).astype(np.float64)
        if metric == "correlation":
            centred = _unit_rows(_centered(query.astype(np.float64)))
            return (take(self._get("centered_unit")) @ centred).astype(np.float64)
        raise ValueError(f"Expected metric to be one of {', '.join(METRICS)}, got {metric!r}")


def top_k(scores: np.ndarray, k: int, higher_is_better: bool) -> np.ndarray:
    """Indices of the ``k`` best scores, best first; ties keep gallery order."""
    n = scores.shape[0]
    key = -scores if higher_is_better else scores
    if k >= n:
        return np.argsort(key, kind="stable")
    candidates = np.argpartition(key, k - 1)[:k]
    return candidates[np.lexsort((candidates, key[candidates]))]
