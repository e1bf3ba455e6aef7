"""Images as the page shows them: thumbnails made once, result tiles and their captions.

The page never sends an original photo where a tile will do: ten results of 12-megapixel
phone photos were 35 MB. Every tile, gallery thumbnail, duplicate and map picture comes
from :class:`Thumbnails`: a WebP of at most 320 pixels a side, made on first show and kept
under the cache folder, named by a hash of what identifies the file (path, size and time;
the content, for images without a file). The original goes out only when asked for.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

from PIL import Image, ImageDraw

from engines import GalleryItem, SearchResult
from engines.galleries.items import within
from engines.results import printable
from engines.storage.cache import atomic_write_bytes

THUMBNAIL = (320, 320)
#: WebP quality of a thumbnail: a 320-pixel photo is 10-25 KB.
QUALITY = 80
#: Shown in place of a result whose file is gone (or may not be served); its caption says why.
PLACEHOLDER_COLOUR = (200, 200, 200)
#: The matched region of a verified duplicate, drawn on its thumbnail.
OUTLINE_COLOUR = (255, 210, 0)


class Thumbnails:
    """Small WebP copies of gallery images, made once and kept in ``folder``.

    ``handed_out`` tells the server which of them it may serve: only thumbnails it made for
    images of a loaded gallery, never a file someone placed in the folder.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._made: set[str] = set()
        self._lock = threading.Lock()

    def file_of(self, item: GalleryItem) -> str:
        """The thumbnail file of ``item``, made now if it is missing.

        Raises ``UnreadableImageError`` (an ``EngineError``) or ``OSError`` for an image that
        cannot be read.
        """
        key = hashlib.sha256(item.stat_key().encode("utf-8", "surrogateescape")).hexdigest()[:40]
        target = self.folder / key[:2] / f"{key}.webp"
        if not target.is_file():
            image = item.open(draft=THUMBNAIL)  # a 4000x3000 JPEG decodes at 500x375
            image.thumbnail(THUMBNAIL, Image.Resampling.BICUBIC)
            _save(image, target)
        return self._handed(target)

    def outlined(self, thumbnail: str, box: tuple[float, float, float, float]) -> str:
        """A copy of ``thumbnail`` (one this process made) with ``box`` (shares of its width
        and height) drawn on it: the part of a photo its duplicate also shows."""
        if not self.handed_out(thumbnail):
            raise ValueError(f"Expected a thumbnail this process made, got {thumbnail!r}")
        tag = hashlib.sha256(f"{thumbnail}:{box}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
        target = Path(thumbnail).with_name(f"{Path(thumbnail).stem}-{tag}.webp")
        if not target.is_file():
            with Image.open(thumbnail) as opened:
                image = opened.convert("RGB")
            x0, y0, x1, y1 = (round(share * side) for share, side in zip(box, image.size * 2, strict=True))
            x1, y1 = max(x1, x0 + 4), max(y1, y0 + 4)  # a sliver still draws (PIL refuses x1 < x0)
            width = max(2, round(max(image.size) / 80))
            pen = ImageDraw.Draw(image)
            # Dark under light: the outline reads on bright skies and dark rooms alike.
            pen.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(20, 20, 20), width=width + 2)
            pen.rectangle((x0 + 1, y0 + 1, x1 - 2, y1 - 2), outline=OUTLINE_COLOUR, width=width)
            _save(image, target)
        return self._handed(target)

    def _handed(self, target: Path) -> str:
        """``target`` as a path this process made, and so may serve."""
        path = str(target)
        with self._lock:
            self._made.add(path)
        return path

    def owns(self, path: str) -> bool:
        """Whether ``path`` lies in the thumbnail folder."""
        return within(os.path.abspath(path), os.path.abspath(self.folder))

    def handed_out(self, path: str) -> bool:
        """Whether ``path`` is a thumbnail this process made (and so may serve)."""
        return os.path.abspath(path) in self._made


def _save(image: Image.Image, target: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=QUALITY)
    atomic_write_bytes(target, buffer.getvalue())


def placeholder() -> Image.Image:
    return Image.new("RGB", (64, 64), PLACEHOLDER_COLOUR)


def caption(result: SearchResult, note: str = "", tags: str = "") -> str:
    """Two lines: ``#rank · score`` (its tags, and why the image is missing, if it is), then
    ``label/file name``; the page's CSS lets a caption wrap instead of cutting it."""
    # A SigLIP model's own probability that the sentence describes the photo reads better than its cosine.
    match = [f"{result.match:.0%} match"] if result.match is not None else []
    extra = ([f"🏷 {tags}"] if tags else []) + ([note] if note else [])
    head = " · ".join([f"#{result.rank}", f"{result.score:.3f}", *match, *extra])
    name = printable(os.path.basename(result.path)) if result.path is not None else f"#{result.position}"
    label = printable(result.label)
    return f"{head}\n{label}/{name}" if label else f"{head}\n{name}"
