from __future__ import annotations

import numpy as np
import pytest

from engines import metrics, vector_index
from engines.metrics import METRICS, top_k
from engines.vector_index import Blocks, VectorIndex
from helpers import brute_force


@pytest.mark.parametrize("metric", METRICS)
def test_vectorised_metrics_match_the_textbook_formula(metric: str) -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(50, 24)).astype(np.float32)
    query = rng.normal(size=24).astype(np.float32)
    index = VectorIndex(matrix)
    np.testing.assert_allclose(index.scores(query, metric), brute_force(matrix, query, metric), rtol=1e-4, atol=1e-4)
    rows = np.array([3, 7, 11])
    np.testing.assert_allclose(index.scores(query, metric, rows), brute_force(matrix[rows], query, metric), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_constant_vectors_give_finite_documented_scores(metric: str) -> None:
    matrix = np.array([[0.5] * 6, [0.0] * 6, [1, 2, 3, 4, 5, 6]], dtype=np.float32)
    index = VectorIndex(matrix)
    for query in (np.full(6, 0.5, np.float32), np.zeros(6, np.float32)):
        scores = index.scores(query, metric)
        assert np.isfinite(scores).all()
    if metric == "correlation":
        # zero variance: "no linear relation"
        assert index.scores(np.full(6, 0.5, np.float32), metric).tolist() == [0.0, 0.0, 0.0]
    if metric == "cosine":
        assert index.scores(np.zeros(6, np.float32), metric).tolist() == [0.0, 0.0, 0.0]


def test_top_k_orders_best_first_and_keeps_gallery_order_on_ties() -> None:
    scores = np.array([0.3, 0.9, 0.9, 0.1, 0.5])
    assert top_k(scores, 3, higher_is_better=True).tolist() == [1, 2, 4]
    assert top_k(scores, 2, higher_is_better=False).tolist() == [3, 0]
    assert top_k(scores, 10, higher_is_better=True).tolist() == [1, 2, 4, 0, 3]


def test_wrong_query_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size 4"):
        VectorIndex(np.zeros((2, 4), np.float32)).scores(np.zeros(3), "l1")


def _photo_like(n: int, seed: int) -> np.ndarray:
    """32x32 RGB vectors in [0, 1], k/255 like the pixel engine's: smooth blocks plus noise,
    so neighbouring pixels are alike as in photos (and some rows repeat, to tie)."""
    rng = np.random.default_rng(seed)
    low = rng.random((n, 4, 4, 3), dtype=np.float32)
    image = np.repeat(np.repeat(low, 8, 1), 8, 2) + rng.normal(0, 0.05, (n, 32, 32, 3)).astype(np.float32)
    matrix = (np.clip(np.round(image * 255), 0, 255) / 255).astype(np.float32).reshape(n, -1)
    matrix[n // 2 : n // 2 + 5] = matrix[3]  # exact ties
    matrix[7] = 0.0  # a black image: cosine 0 by definition
    return matrix


PIXEL_BLOCKS = Blocks((32, 32, 3), ((8, 8, 1), (4, 4, 1)))


@pytest.mark.parametrize("metric", METRICS)
def test_block_pruned_nearest_is_exactly_the_full_scan(metric: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector_index, "PRUNE_MIN_ROWS", 0)
    matrix = _photo_like(3000, seed=1)
    index = VectorIndex(matrix, PIXEL_BLOCKS)
    rng = np.random.default_rng(2)
    pruned = 0
    real_scores = index.scores
    calls: list[int] = []

    def counting(query: np.ndarray, metric: str, rows: np.ndarray | None = None) -> np.ndarray:
        calls.append(len(index) if rows is None else len(rows))
        return real_scores(query, metric, rows)

    monkeypatch.setattr(index, "scores", counting)
    queries = [matrix[3], matrix[7], matrix[100], (matrix[200] * 0.6 + 0.2).astype(np.float32), np.zeros(3072, np.float32)]
    for query in queries:
        for rows in (None, np.sort(rng.choice(len(matrix), 1000, replace=False)), np.array([3, 1500, 1501, 2999])):
            for k in (1, 10, 50):
                calls.clear()
                found, scores = index.nearest(query, k, metric, rows)
                full = real_scores(query, metric, rows)
                if metric == "l2":  # nearest re-ranks by the exact distance, not the expanded formula
                    full = np.sqrt(((matrix[rows if rows is not None else slice(None)].astype(np.float64) - query) ** 2).sum(axis=1))
                expected = top_k(full, k, metric in metrics.SIMILARITIES)
                # The same ranking: BLAS may round one row's dot product differently
                # in a smaller matrix, so rows whose scores tie to the last bit may swap.
                np.testing.assert_allclose(scores, full[expected], rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(full[found], full[expected], rtol=1e-6, atol=1e-6)
                assert len(set(found.tolist())) == len(found)
                if metric == "l1":  # no BLAS: exactly the full scan's rows and scores
                    assert found.tolist() == expected.tolist() and scores.tolist() == full[expected].tolist()
                pruned += sum(calls) < (len(matrix) if rows is None else len(rows))
    assert pruned > 0  # the bounds did rule rows out, not only fall back to the full scan


def test_nearest_without_structure_falls_back_to_the_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector_index, "PRUNE_MIN_ROWS", 0)
    rng = np.random.default_rng(5)
    matrix = rng.random((2000, 3072), dtype=np.float32)  # white noise: block sums tell nothing
    index = VectorIndex(matrix, PIXEL_BLOCKS)
    real_scores = index.scores
    whole: list[bool] = []
    monkeypatch.setattr(index, "scores", lambda q, m, rows=None: whole.append(rows is None) or real_scores(q, m, rows))
    for metric in METRICS:
        whole.clear()
        found, scores = index.nearest(matrix[9], 10, metric)
        assert any(whole)  # the bounds ruled out too little: every row was compared
        full = real_scores(matrix[9], metric)
        assert found.tolist() == top_k(full, 10, metric in metrics.SIMILARITIES).tolist()


def test_stored_row_stats_are_used_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    matrix = _photo_like(200, seed=4)
    first = VectorIndex(matrix, PIXEL_BLOCKS)
    def refuse(self: VectorIndex, levels: int) -> None:
        raise RuntimeError("recomputed")

    monkeypatch.setattr(VectorIndex, "_compute_stats", refuse)
    again = VectorIndex(matrix, PIXEL_BLOCKS, first.row_stats())
    for metric in METRICS:
        assert again.scores(matrix[1], metric).tolist() == first.scores(matrix[1], metric).tolist()
    with pytest.raises(RuntimeError, match="recomputed"):  # stats of another matrix are not taken
        VectorIndex(matrix[:100], PIXEL_BLOCKS, first.row_stats())


def test_block_sums_bound_each_metric() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.random((2, 3072), dtype=np.float32)
    index = VectorIndex(np.stack([a]), PIXEL_BLOCKS)
    for level in (0, 1):
        for metric in METRICS:
            bound = index._bound(b, metric, level, np.array([0]))[0]
            exact = index.scores(b, metric)[0]
            assert bound >= exact - 1e-9 if metric in metrics.SIMILARITIES else bound <= exact + 1e-9
