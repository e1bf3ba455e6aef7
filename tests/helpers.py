"""Brute-force answers the tests check the engines against."""

from __future__ import annotations

import numpy as np


def brute_force(matrix: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """The textbook formula row by row, in float64."""
    out = []
    q = np.asarray(query, dtype=np.float64)
    for row in np.asarray(matrix, dtype=np.float64):
        if metric == "l1":
            out.append(np.sum(np.abs(row - q)))
        elif metric == "l2":
            out.append(np.sqrt(np.sum((row - q) ** 2)))
        elif metric == "cosine":
            denom = np.linalg.norm(row) * np.linalg.norm(q)
            out.append(row @ q / denom if denom > 0 else 0.0)
        elif metric == "correlation":
            a, b = row - row.mean(), q - q.mean()
            denom = np.sqrt((a @ a) * (b @ b))
            out.append(a @ b / denom if denom > 0 else 0.0)
        else:
            raise ValueError(metric)
    return np.array(out)
