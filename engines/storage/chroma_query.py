"""Queries of one Chroma collection: the nearest records a ``where`` clause keeps, exactly when
few are kept, and Chroma's distances as the engine's scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: A filter that keeps this many records or fewer is ranked exactly (their vectors fetched).
#: Measured (benchmarks/filters.py, 20,000 rows): up to ~400 kept rows the exact path is also
#: the faster one (20 rows: 6 ms against 20 ms); above, fetching vectors costs ~50 us a row
#: while the filtered HNSW query, at our ef_search, still found every one of the top 10.
EXACT_BELOW = 500
#: A filter keeping many records is answered from the HNSW graph without the filter, asked for
#: this many times the share it leaves out (at least ``k`` kept expected three times over) and
#: cut to the kept ones; with fewer than ``k`` kept among them, Chroma's own filtered query runs.
#: A year of a million photos (an eighth kept): 405 ms filtered by Chroma (benchmarks/million_chroma.py).
OVERFETCH = 3
OVERFETCH_MAX = 5000


def nearest_records(collection: Any, vector: np.ndarray, k: int, metric: str, where: dict[str, Any] | None,
                    count: int, cut: Callable[[list[str] | None], list[str]] | None = None) -> dict[str, Any]:
    """``collection.query``'s answer for the ``k`` nearest of its ``count`` records that ``where``
    keeps and ``cut`` (the tags: a further cut of the kept ids, or of all for ``None``) leaves:
    ranked exactly when few are kept or after a cut, else by Chroma's HNSW with ``where``."""
    kept = collection.get(where=where, include=[])["ids"] if where is not None else None
    if cut is not None:
        kept = cut(kept)
    if kept is not None and (len(kept) <= EXACT_BELOW or cut is not None):
        return exact_records(collection, kept, vector, k, metric)
    if kept is not None and count:
        wanted = min(count, OVERFETCH_MAX, int(np.ceil(k * OVERFETCH * count / max(len(kept), 1))))
        if wanted < OVERFETCH_MAX:
            answer = collection.query(query_embeddings=[vector], n_results=wanted, include=["metadatas", "distances"])
            keep = set(kept)
            rows = [n for n, record in enumerate(answer["ids"][0]) if record in keep][:k]
            if len(rows) >= min(k, len(kept)):
                return {field: [[answer[field][0][n] for n in rows]] for field in ("ids", "metadatas", "distances")}
    return collection.query(query_embeddings=[vector], n_results=min(k, count), where=where,
                            include=["metadatas", "distances"])


def exact_records(collection: Any, ids: list[str], vector: np.ndarray, k: int, space: str) -> dict[str, Any]:
    """``collection.query``'s answer for the records ``ids``, ranked exactly (Chroma's distances).
    Only the vectors are fetched for all of them, metadata only for the ``k`` kept: Chroma hands
    out ~50 us a row, and fetching each row's metadata as well made it half as slow again."""
    found = collection.get(ids=ids, include=["embeddings"]) if ids else {"ids": []}
    matrix = np.asarray(found.get("embeddings", []), dtype=np.float32).reshape(len(found["ids"]), len(vector))
    if space == "l2":
        distances = ((matrix - vector) ** 2).sum(axis=1)
    else:  # cosine and ip: 1 - similarity
        scale = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector) if space == "cosine" else 1.0
        distances = 1.0 - matrix @ vector / np.maximum(scale, 1e-12)
    order = np.lexsort((np.arange(len(distances)), distances))[:k]
    best = [found["ids"][i] for i in order]
    described = collection.get(ids=best, include=["metadatas"]) if best else {"ids": [], "metadatas": []}
    metadata = dict(zip(described["ids"], described["metadatas"], strict=True))
    return {"ids": [best], "metadatas": [[metadata[record] for record in best]],
            "distances": [[float(distances[i]) for i in order]]}


def distance_score(space: str, distance: float) -> float:
    """Chroma's distance as the user reads the metric (the CLIP engine's convention)."""
    if space == "l2":
        return float(np.sqrt(max(distance, 0.0)))  # Chroma reports the squared distance
    return 1.0 - distance  # cosine and ip distances are 1 - similarity


