"""Result tiles: each result's thumbnail (or a placeholder saying why there is none) and caption."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from PIL import Image

from engines import EngineError, GalleryItem, SearchResult
from engines.galleries.gallery import Gallery
from engines.results import printable

from .images import Thumbnails, caption, placeholder

if TYPE_CHECKING:
    from .service import SearchService
    from .session import SearchSession

#: Threads that make missing thumbnails for one page of results (decoding releases the GIL).
THUMBNAIL_WORKERS = 2


class Tiles:
    """Pictures of results: thumbnails of gallery files only, placeholders for the rest."""

    def __init__(self, thumbnails: Thumbnails, is_gallery_file: Callable[[str], bool]) -> None:
        self.thumbnails = thumbnails
        self._is_gallery_file = is_gallery_file

    def picture(self, result: SearchResult, gallery: Gallery) -> tuple[Any, str]:
        """(thumbnail file or placeholder image, note) for one result of ``gallery``: a file
        deleted since indexing, or one that is not an image of a loaded gallery, becomes a
        placeholder with the reason instead of a broken tile."""
        if result.path is None:
            items = gallery.splits["train"]
            if not 0 <= result.position < len(items):
                return placeholder(), "not in the loaded gallery"
            item = items[result.position]
        elif not os.path.isfile(result.path):
            return placeholder(), "file no longer exists"
        elif not self._is_gallery_file(result.path):
            return placeholder(), "not in the loaded gallery"
        else:
            item = GalleryItem(result.label, result.path)
        try:
            return self.thumbnails.file_of(item), ""
        except (EngineError, OSError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            return placeholder(), f"cannot be read ({reason})"

    def tiles(self, results: Sequence[SearchResult], gallery: Gallery,
              tags: Mapping[str, str] | None = None) -> list[tuple[Any, str]]:
        """(picture, caption) of each result, for a ``gr.Gallery``, with its tags (by record)
        where given; missing thumbnails are made in parallel."""
        def tile(result: SearchResult) -> tuple[Any, str]:
            picture, note = self.picture(result, gallery)
            return picture, caption(result, note, (tags or {}).get(result.record, ""))

        if len(results) < 2:
            return [tile(result) for result in results]
        with ThreadPoolExecutor(THUMBNAIL_WORKERS) as pool:
            return list(pool.map(tile, results))

    def small_picture(self, result: SearchResult, gallery: Gallery, size: tuple[int, int]) -> Image.Image | None:
        """A decoded picture of ``result`` of at most ``size`` (the map's), or ``None``."""
        found, _ = self.picture(result, gallery)
        if not isinstance(found, str):
            return None
        with Image.open(found) as thumb:
            picture = thumb.convert("RGB")
        picture.thumbnail(size)
        return picture


def read_text(service: SearchService, session: SearchSession | None, chosen: Any) -> str:
    """The text the selected photo shows, where the engine read it (the words engine), to copy."""
    engine = service.built(session.name, session.source, session.choices) if session else None
    lines = engine.text_of(chosen) if engine is not None else []
    if not lines:
        return ""
    shown = " · ".join(printable(line.text) for line in lines)[:600].replace("`", "'")
    return f"\n\nText in this photo: `{shown}`"
