"""The CLIP engine: rank the gallery by CLIP image embeddings, for image or text queries.

Vectors come from the shared :class:`~engines.embedder.ClipEmbedder` and are compared with
the same four metrics as the pixel engine. Embeddings are cached on disk per model and per
file content, so re-indexing an unchanged gallery computes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .base import Query
from .embedder import DEFAULT_MODEL, ClipEmbedder, shared_embedder
from .gallery import GalleryItem
from .metrics import METRICS
from .vector_engine import VectorEngine


class ClipEngine(VectorEngine):
    """CLIP image embeddings in an in-memory matrix; text queries rank by text-image similarity."""

    name = "clip"
    metrics = METRICS
    default_metric = "cosine"
    accepts_text = True

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        revision: str | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        embedder: ClipEmbedder | None = None,
        cache: str = "on",
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(cache=cache, cache_dir=cache_dir)
        self.embedder = embedder or shared_embedder(
            model, revision=revision, device=device, batch_size=batch_size, workers=workers
        )

    def _cache_namespace(self) -> dict[str, object]:
        return self.embedder.identity()

    def _item_key(self, item: GalleryItem) -> str:
        return item.content_hash

    def _compute(self, items: list[GalleryItem]) -> Iterator[np.ndarray | Exception]:
        return self.embedder.embed_items(items)

    def _query_vector(self, query: Query) -> np.ndarray:
        return self.embedder.embed_query(query)
