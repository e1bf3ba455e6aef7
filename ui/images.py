"""Images as the page shows them: result tiles and thumbnails."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PIL import Image

from engines import GalleryItem, SearchResult
from engines.gallery import Gallery

THUMBNAIL = (320, 320)
#: Shown in place of a result whose file is gone (or may not be served); its caption says why.
PLACEHOLDER_COLOUR = (200, 200, 200)


def thumbnail(item: GalleryItem) -> Image.Image:
    image = item.open(draft=THUMBNAIL)
    image.thumbnail(THUMBNAIL)
    return image


def caption(result: SearchResult, note: str = "") -> str:
    """``#rank label · score · file name`` (and why the image is missing, if it is)."""
    parts = [f"#{result.rank} {result.label or '(top folder)'}", f"{result.score:.3f}"]
    if result.path is not None:
        parts.append(os.path.basename(result.path))
    if note:
        parts.append(note)
    return " · ".join(parts)


def result_tile(result: SearchResult, gallery: Gallery, may_serve: Callable[[str], bool]) -> tuple[Any, str]:
    """(image or path, caption) of one result for a ``gr.Gallery``.

    A file deleted since indexing, or one the server may not hand out, becomes a plain
    placeholder with the reason in its caption instead of a broken tile.
    """
    if result.path is None:
        return thumbnail(gallery.splits["train"][result.position]), caption(result)
    if not os.path.isfile(result.path):
        return Image.new("RGB", (64, 64), PLACEHOLDER_COLOUR), caption(result, "file no longer exists")
    if not may_serve(result.path):
        return Image.new("RGB", (64, 64), PLACEHOLDER_COLOUR), caption(result, "not in the loaded gallery")
    return result.path, caption(result)
