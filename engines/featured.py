"""The features built over the engine contract, offered as methods of every engine.

``engine.duplicates()``, ``engine.gallery_map()``, ``engine.export()`` and ``engine.explain()``
are the free functions of engines/analysis and engines/storage applied to the engine. They
live here, above the contract (engines/base.py declares them and imports none of them), so
the contract never reaches up into the features built on it.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .analysis.duplicates import find_duplicates
from .analysis.explanations import Explanation, explain
from .analysis.gallery_map import map_gallery
from .base import SearchEngine
from .query import Query, SearchQuery
from .results import DuplicateGroup, GalleryMap, SearchResult


class FeaturedEngine(SearchEngine):
    """A :class:`SearchEngine` with the features as methods (every engine this package makes)."""

    def duplicates(
        self, threshold: float | None = None, metric: str | None = None, *, verify: bool | None = None
    ) -> list[DuplicateGroup]:
        """``engines.find_duplicates(self, threshold, metric, verify=verify)``."""
        return find_duplicates(self, threshold, metric, verify=verify)

    def gallery_map(self, metric: str | None = None, *, limit: int | None = None, seed: int = 0) -> GalleryMap:
        """``engines.map_gallery(self, metric, limit=limit, seed=seed)``."""
        return map_gallery(self, metric, limit=limit, seed=seed)

    def export(self, target: str | Path, *, overwrite: bool = False) -> str:
        """``engines.export_index(self, target, overwrite=overwrite)``."""
        from .storage.transfer import export_index  # noqa: PLC0415 - datasets loads on first use

        return export_index(self, target, overwrite=overwrite)

    def explain(
        self, query: SearchQuery | Query, result: SearchResult | Image.Image | Path | str, metric: str | None = None,
        grid: tuple[int, int] | None = None, *, query_heatmap: bool = True,
    ) -> Explanation:
        """``engines.explain(self, query, result, metric, grid, query_heatmap=...)``: why it matched."""
        return explain(self, query, result, metric, grid, query_heatmap=query_heatmap)
