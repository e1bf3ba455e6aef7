"""The CLIP engine: rank the gallery by CLIP image embeddings, for image or text queries.

Vectors come from the shared :class:`~engines.embedder.ClipEmbedder` and are compared with
the same four metrics as the pixel engine. Embeddings are cached on disk per model and per
file content, so re-indexing an unchanged gallery computes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .base import SkippedFile
from .cache import ContentHashes
from .embedder import ClipEmbedder, EmbedderConfig, UsesEmbedder, resolve_embedder
from .items import GalleryItem
from .metrics import METRICS
from .results import Progress
from .vector_engine import VectorEngine


class ClipEngine(UsesEmbedder, VectorEngine):
    """CLIP image embeddings in an in-memory matrix; text queries rank by text-image similarity."""

    name = "clip"
    title = "CLIP"
    metrics = METRICS
    default_metric = "cosine"
    duplicate_thresholds = {"cosine": 0.95, "correlation": 0.95, "l2": 0.32, "l1": 5.5}
    _keys_are_content_hashes = True

    def __init__(
        self,
        *,
        embedder: ClipEmbedder | EmbedderConfig | None = None,
        cache: bool | str = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(cache=cache, cache_dir=cache_dir)
        self.embedder = resolve_embedder(embedder)
        self._hashes: ContentHashes | None = None

    def _cache_namespace(self) -> dict[str, object]:
        return self.embedder.identity()

    def _index(self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: Progress) -> int:
        self._hashes = ContentHashes(self.cache_dir / "content-hashes.json") if self.cache_enabled else None
        try:
            return super()._index(gallery, skipped, progress=progress)
        finally:
            if self._hashes is not None:
                self._hashes.save()

    def _item_key(self, item: GalleryItem) -> str:
        return self._hashes.of(item) if self._hashes is not None else item.content_hash

    def _dim(self) -> int:
        return self.embedder.dim

    def _compute(self, items: list[GalleryItem]) -> Iterator[np.ndarray | Exception]:
        return self.embedder.embed_items(items)
