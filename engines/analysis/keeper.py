"""Which copy of a duplicate group to keep: the most pixels, then the oldest file."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from PIL import Image

from ..galleries.images import open_regular
from ..galleries.items import GalleryItem
from ..results import DuplicateGroup


def keeper(group: DuplicateGroup) -> int:
    """Which member of ``group`` to keep (``keeper_of``); near groups lead with it already."""
    return keeper_of([GalleryItem(m.label, m.path, position=m.position) for m in group.members])


def keeper_of(items: Sequence[GalleryItem]) -> int:
    """Which of ``items`` to keep, as people usually choose: the most pixels (the original,
    not a resized copy), then the oldest file (the first one made), then the first by path.
    Reads image headers, and file times where the pixel counts tie."""

    def pixels(item: GalleryItem) -> int:
        try:
            # open_regular: a member swapped for a FIFO since indexing must not hang the server
            source = open_regular(item.checked_path()) if item.path is not None else io.BytesIO(item.data or b"")
            with source, Image.open(source) as image:
                return image.width * image.height
        except Exception:  # noqa: BLE001 - a file gone or unreadable since indexing is kept last
            return 0

    def made(item: GalleryItem) -> float:
        try:
            return os.stat(item.checked_path()).st_mtime if item.path is not None else float("inf")
        except Exception:  # noqa: BLE001 - as above
            return float("inf")

    counts = [pixels(item) for item in items]
    largest = [at for at, n in enumerate(counts) if n == max(counts)]
    if len(largest) == 1:
        return largest[0]
    return min(largest, key=lambda at: (made(items[at]), items[at].path or ""))
