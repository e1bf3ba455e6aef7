"""A gallery matrix that answers nearest-neighbour queries, skipping rows it can rule out.

``VectorIndex`` keeps per-row terms (norms, means) so a query allocates nothing the size of
the matrix, and, given ``Blocks`` (how a vector's numbers group into neighbouring pixels or
colour bins), block sums that bound every metric: rows whose bound already loses to the
k-th best of a first sample are never compared in full (GEMINI lower-bounding). Answers
are the full scan's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .blocks import Blocks
from .ivf import IVF_MIN_FILTERED, IVF_MIN_ROWS, InvertedIndex
from .metrics import METRICS, SIMILARITIES, FeatureMatrix, FeatureVector, _l1, _safe_divide, top_k

#: Rows per block for the index-time passes that would otherwise allocate a float64
#: temporary the size of the matrix (norms, centring).
BLOCK_ROWS = 512
#: Below this many rows a full scan answers in a few milliseconds; pruning is not worth it.
PRUNE_MIN_ROWS = 20_000
#: Pruning gives up (and scans everything) when more than this share of rows survive the
#: coarse bound: the data is too uniform for block sums to tell rows apart.
PRUNE_MAX_SHARE = 0.3
#: Room left for rounding when a bound is compared with an exact score (relative).
BOUND_SLACK = 1e-4
#: Metrics where a larger score is the better match (``ip``: Chroma's inner product).
#: Rows beyond 2k whose l2 is recomputed exactly: room for rows that the expanded formula's
#: rounding put just behind the k-th.
L2_RERANK_EXTRA = 8


@dataclass
class VectorIndex:
    """A float32 gallery matrix with the per-row terms each metric needs, computed once.

    Only vectors are precomputed, never a second matrix: squared norms (l2), norms
    (cosine), and row means with centred norms (correlation). Since a centred query sums
    to zero, ``(x - mean(x)) . q_c = x . q_c``, so correlation is one matrix-vector
    product with the raw rows too. Memory stays at the matrix itself, plus, where the
    engine describes its vectors as ``blocks``, their block sums (1/16 and 1/64 of it for
    32x32 pixels), which let ``nearest`` skip rows without changing its answer.

    ``stats`` takes those terms as ``row_stats()`` gave them for the same matrix (the
    vector cache keeps them), so an unchanged gallery is not read through again.
    """

    matrix: FeatureMatrix
    blocks: Blocks | None = None
    stats: dict[str, np.ndarray] | None = field(default=None, repr=False)
    norms: np.ndarray = field(init=False, repr=False)
    sq_norms: np.ndarray = field(init=False, repr=False)
    means: np.ndarray = field(init=False, repr=False)
    centred_norms: np.ndarray = field(init=False, repr=False)
    summaries: list[np.ndarray] = field(init=False, repr=False)
    summary_sq_norms: list[np.ndarray] = field(init=False, repr=False)
    #: Inverted lists over the (unit) rows, attached to this matrix's keys: cosine searches
    #: of more than ``IVF_MIN_ROWS`` rows scan a few percent of them (``engines/ivf.py``).
    approximate: InvertedIndex | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2:
            raise ValueError(f"Expected a 2-D feature matrix, got shape {self.matrix.shape}")
        n = self.matrix.shape[0]
        levels = len(self.blocks.sizes) if self.blocks is not None else 0
        if self.blocks is not None and int(np.prod(self.blocks.shape)) != self.matrix.shape[1]:
            raise ValueError(f"Expected vectors of shape {self.blocks.shape}, got size {self.matrix.shape[1]}")
        stats = self.stats or {}
        shapes: dict[str, tuple[int, ...]] = {"sq_norms": (n,), "means": (n,), "centred_norms": (n,)}
        for i in range(levels):
            shapes[f"summary{i}"] = (n, self.matrix.shape[1] // self.blocks.block_size(i))  # type: ignore[union-attr]
        if all(name in stats and stats[name].shape == shape for name, shape in shapes.items()):
            self.sq_norms, self.means, self.centred_norms = stats["sq_norms"], stats["means"], stats["centred_norms"]
            self.summaries = [stats[f"summary{i}"] for i in range(levels)]
        else:
            self._compute_stats(levels)
        self.stats = None
        self.norms = np.sqrt(self.sq_norms)
        self.summary_sq_norms = [np.einsum("ij,ij->i", s, s, dtype=np.float64) for s in self.summaries]

    def _compute_stats(self, levels: int) -> None:
        n = self.matrix.shape[0]
        self.sq_norms, self.means, self.centred_norms = np.empty(n), np.empty(n), np.empty(n)
        blocks = self.blocks
        self.summaries = [
            np.empty((n, self.matrix.shape[1] // blocks.block_size(i)), dtype=np.float32)
            for i in range(levels) if blocks is not None
        ]
        for start in range(0, n, BLOCK_ROWS):
            raw = self.matrix[start : start + BLOCK_ROWS]
            block = raw.astype(np.float64)
            rows = slice(start, start + block.shape[0])
            self.sq_norms[rows] = np.einsum("ij,ij->i", block, block)
            self.means[rows] = block.mean(axis=1)
            centred = block - self.means[rows, None]
            self.centred_norms[rows] = np.sqrt(np.einsum("ij,ij->i", centred, centred))
            for level, summary in enumerate(self.summaries):
                summary[rows] = self.blocks.summed(raw, level)  # type: ignore[union-attr]

    def row_stats(self) -> dict[str, np.ndarray]:
        """The per-row terms, to be kept beside the matrix and handed back as ``stats``."""
        out = {"sq_norms": self.sq_norms, "means": self.means, "centred_norms": self.centred_norms}
        out.update({f"summary{i}": summary for i, summary in enumerate(self.summaries)})
        return out

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def scores(self, query: FeatureVector, metric: str, rows: np.ndarray | None = None,
               vectors: np.ndarray | None = None) -> np.ndarray:
        """The metric between ``query`` and every row (or only ``rows``, whose ``vectors`` the
        caller may already hold), as float64."""
        query = self._checked(query)
        matrix = self.matrix if rows is None else self.matrix[rows] if vectors is None else vectors

        def take(values: np.ndarray) -> np.ndarray:
            return values if rows is None else values[rows]

        if metric == "l1":
            return _l1(matrix, query)
        if metric == "l2":
            # |x-q|^2 = |x|^2 - 2 x.q + |q|^2; clamp the rounding that can dip below 0.
            q64 = query.astype(np.float64)
            squared = take(self.sq_norms) - 2.0 * (matrix @ query) + q64 @ q64
            return np.sqrt(np.maximum(squared, 0.0))
        if metric == "cosine":
            q_norm = float(np.linalg.norm(query.astype(np.float64)))
            return _safe_divide((matrix @ query).astype(np.float64), take(self.norms) * q_norm)
        if metric == "correlation":
            centred = query.astype(np.float64) - query.mean(dtype=np.float64)
            q_norm = float(np.linalg.norm(centred))
            # The explicit mean term cancels what float32 rounding leaves of sum(centred).
            dots = (matrix @ centred.astype(np.float32)).astype(np.float64) - take(self.means) * centred.sum()
            return _safe_divide(dots, take(self.centred_norms) * q_norm)
        raise ValueError(f"Expected metric to be one of {', '.join(METRICS)}, got {metric!r}")

    def _checked(self, query: FeatureVector) -> FeatureVector:
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.matrix.shape[1]:
            raise ValueError(
                f"Expected a query vector of size {self.matrix.shape[1]}, got {query.shape[0]}"
            )
        return query

    def nearest(
        self, query: FeatureVector, k: int, metric: str, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows (indices into ``rows``, sorted, when given, else into the matrix), best
        first, and their scores: what ``top_k(scores(...))`` picks (BLAS may round a row's
        product differently in a smaller matrix, so rows that tie to the last bit may swap).

        With ``blocks``, rows whose block-sum bound already loses to the k-th best of a
        first sample are never compared in full; that bound is checked coarse, then fine.
        """
        if metric not in METRICS:
            raise ValueError(f"Expected metric to be one of {', '.join(METRICS)}, got {metric!r}")
        if self.approximate is not None and metric == "cosine" and len(self) >= IVF_MIN_ROWS:
            # A filter that keeps few rows is answered exactly: scanning them is fast already.
            if rows is None or len(rows) >= IVF_MIN_FILTERED and len(rows) > k:
                return self._approximate(query, k, metric, rows)
        if metric == "l2":
            # |x|^2 - 2 x.q + |q|^2 cancels: an image's distance to itself came out 0.015. Rank by
            # it, then compute the best rows' distances directly and rank those again.
            total = len(self) if rows is None else len(rows)
            found, _ = self._nearest(query, min(total, 2 * k + L2_RERANK_EXTRA), metric, rows)
            picked = found if rows is None else np.asarray(rows)[found]
            exact = _exact_l2(self.matrix[picked], self._checked(query))
            order = np.lexsort((found, exact))[:k]
            return found[order], exact[order]
        return self._nearest(query, k, metric, rows)

    def _approximate(
        self, query: FeatureVector, k: int, metric: str, rows: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``nearest`` through the inverted lists: the probed lists' best rows by dot product,
        scored exactly as a full scan scores them (their order may differ from a full scan's
        only where a true neighbour lies in a list not probed)."""
        assert self.approximate is not None
        query = self._checked(query)
        norm = float(np.linalg.norm(query))
        unit = query / norm if norm > 0 else query
        allowed = None
        if rows is not None:
            allowed = np.zeros(len(self), dtype=bool)
            allowed[rows] = True
        found, vectors = self.approximate.candidates(unit, k, self.matrix, allowed)
        scores = self.scores(query, metric, found, vectors)
        order = top_k(scores, k, True)
        picked = found[order]
        if rows is not None:  # back to positions within ``rows``
            picked = np.searchsorted(np.asarray(rows), picked)
        return picked, scores[order]

    def _nearest(
        self, query: FeatureVector, k: int, metric: str, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        higher = metric in SIMILARITIES
        total = len(self) if rows is None else len(rows)
        if self.blocks is None or total < max(PRUNE_MIN_ROWS, 4 * k):
            scores = self.scores(query, metric, rows)
            order = top_k(scores, k, higher)
            return order, scores[order]
        query = self._checked(query)
        universe = np.arange(len(self)) if rows is None else np.asarray(rows)
        # A first sample: the rows the coarse bound likes best, compared in full, set the bar.
        bound = self._bound(query, metric, 0, rows)
        sample = np.sort(universe[np.argpartition(-bound if higher else bound, 4 * k - 1)[: 4 * k]])
        bar = np.sort(self.scores(query, metric, sample))
        bar_value = float(bar[-k] if higher else bar[k - 1])
        survivors = universe[self._passes(bound, bar_value, metric)]
        if len(survivors) > PRUNE_MAX_SHARE * total:
            scores = self.scores(query, metric, rows)
            order = top_k(scores, k, higher)
            return order, scores[order]
        for level in range(1, len(self.summaries)):
            survivors = survivors[self._passes(self._bound(query, metric, level, survivors), bar_value, metric)]
        candidates = np.union1d(survivors, sample)  # sorted: ties keep gallery order
        scores = self.scores(query, metric, candidates)
        order = top_k(scores, k, higher)
        found = candidates[order]
        if rows is not None:  # back to positions within ``rows``
            found = np.searchsorted(universe, found)
        return found, scores[order]

    def _passes(self, bound: np.ndarray, bar: float, metric: str) -> np.ndarray:
        """Rows whose bound does not rule them out against ``bar``, with room for rounding."""
        if metric in SIMILARITIES:
            return bound >= bar - BOUND_SLACK
        return bound <= bar * (1 + BOUND_SLACK) + BOUND_SLACK

    def _bound(self, query: FeatureVector, metric: str, level: int, rows: np.ndarray | None) -> np.ndarray:
        """For each of ``rows`` (``None``: all): a lower bound of l1 / l2, an upper bound of
        cosine / correlation, from the block sums at ``level``."""
        assert self.blocks is not None
        every = slice(None)
        if rows is None:
            rows = every  # type: ignore[assignment]
        summary = self.summaries[level][rows]
        b = float(self.blocks.block_size(level))
        if metric == "l1":
            return _l1(summary, self.blocks.summed(query[None], level)[0])
        if metric == "correlation":
            q = query.astype(np.float64) - query.mean(dtype=np.float64)
        else:
            q = query.astype(np.float64)
        q_summary = self.blocks.summed(q.astype(np.float32)[None], level)[0].astype(np.float64)
        dots = (summary @ q_summary.astype(np.float32)).astype(np.float64)
        sq = self.summary_sq_norms[level][rows]
        if metric == "l2":
            squared = np.maximum(sq - 2.0 * dots + q_summary @ q_summary, 0.0) / b
            # Float32 sums round; shrink the bound by that much so it never passes the truth.
            squared = np.maximum(squared - BOUND_SLACK * (sq + q_summary @ q_summary) / b, 0.0)
            return np.sqrt(squared)
        q_norm = float(np.linalg.norm(q))
        if metric == "cosine":
            norms = self.norms[rows]
            own = sq  # |S x|^2
        else:
            norms = self.centred_norms[rows]
            # S(x - mean x) = S x - b mean(x): |.|^2 = |S x|^2 - b D mean^2, and S q_c sums to 0.
            own = np.maximum(sq - b * self.matrix.shape[1] * self.means[rows] ** 2, 0.0)
            dots = dots - self.means[rows] * b * float(q_summary.sum())
        if q_norm == 0:
            return np.zeros(len(summary))
        safe = np.where(norms > 0, norms, 1.0)
        # |S(x/|x|) - S(q/|q|)|^2 / b bounds |x/|x| - q/|q||^2 = 2 - 2 cos from below.
        distance = (own / safe**2 - 2.0 * dots / (safe * q_norm) + (q_summary @ q_summary) / q_norm**2) / b
        upper = 1.0 - np.maximum(distance, 0.0) / 2.0
        return np.where(norms > 0, upper, 0.0)


def _exact_l2(rows: FeatureMatrix, query: FeatureVector) -> np.ndarray:
    """The Euclidean distance of a few rows, from their differences (float64)."""
    difference = np.asarray(rows, dtype=np.float64) - query.astype(np.float64)
    return np.sqrt(np.einsum("ij,ij->i", difference, difference))
