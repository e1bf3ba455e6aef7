"""Decoding images the same careful way everywhere: gallery files, uploads and queries.

Every failure becomes :class:`UnreadableImageError` naming the source and the reason, so
indexing can skip the file with one clear line and a bad query gets a clear message.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UnreadableImageError

ImageSource = str | Path | bytes | Image.Image

#: File endings a gallery folder is scanned for; anything else is ignored silently.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
)

# Pillow warns (rather than raises) between MAX_IMAGE_PIXELS and twice that; a gallery
# must not let one huge file eat the machine's memory, so both count as unreadable.
_DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
    MemoryError,
)


def is_image_file(path: str | Path) -> bool:
    """True for a file name this project indexes (by ending; hidden files excluded)."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def source_name(source: ImageSource) -> str:
    """A short human name for ``source`` in messages."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__} {getattr(source, 'size', '')}>"


def load_image(source: ImageSource, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``source`` to an RGB image with EXIF orientation applied.

    ``draft`` lets the JPEG decoder scale down by a power of two while decoding, to at
    least that size: several times faster for big photos when only a thumbnail is
    needed. Transparent pixels are composited on white, since their stored colour is
    arbitrary; 16-bit images are scaled to 8 bits rather than clipped.
    """
    name = source_name(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                image = source
                image.load()
            else:
                fp = io.BytesIO(source) if isinstance(source, bytes) else source
                with Image.open(fp) as opened:
                    if draft is not None and opened.format == "JPEG":
                        opened.draft("RGB", draft)
                    # seek(0) keeps the first frame of an animation; load() forces the
                    # full decode here, so truncated files fail now and not later.
                    opened.seek(0)
                    opened.load()
                    image = ImageOps.exif_transpose(opened) or opened
                    image = to_rgb(image)
                    if image is opened:
                        image = image.copy()
                return image
            return to_rgb(ImageOps.exif_transpose(image) or image)
    except _DECODE_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            reason = f"too many pixels (decompression bomb guard): {reason}"
        elif isinstance(exc, OSError) and exc.errno is not None:
            reason = os_reason(exc)
        raise UnreadableImageError(name, reason) from exc


def os_reason(exc: OSError) -> str:
    """How a failed open or stat of a gallery file is worded for the user."""
    if isinstance(exc, FileNotFoundError):
        return "file not found (or a dangling symbolic link)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        array = np.asarray(image.convert("I"), dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        gray = np.clip(np.rint(array * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(np.nanmin(array, initial=0.0)), float(np.nanmax(array, initial=1.0))
        scaled = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
        return Image.fromarray((scaled * 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in {"PA", "LA", "La", "RGBa"}:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")
