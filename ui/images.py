"""Images as the page shows them: result tiles and thumbnails."""

from __future__ import annotations

from typing import Any

from PIL import Image

from engines import GalleryItem, SearchResult
from engines.gallery import Gallery

THUMBNAIL = (320, 320)


def thumbnail(item: GalleryItem) -> Image.Image:
    image = item.open(draft=THUMBNAIL)
    image.thumbnail(THUMBNAIL)
    return image


def result_tile(result: SearchResult, gallery: Gallery) -> tuple[Any, str]:
    """(image or path, caption) of one result for a ``gr.Gallery``."""
    caption = f"#{result.rank} {result.label} · {result.score:.3f}"
    if result.path is not None:
        return result.path, caption
    return thumbnail(gallery.splits["train"][result.position]), caption
