from __future__ import annotations

import numpy as np
import pytest

from engines.metrics import METRICS, VectorIndex, top_k
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
