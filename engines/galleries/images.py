"""Decoding images the same careful way everywhere: gallery files, uploads and queries.

Every failure becomes :class:`UnreadableImageError` naming the source and the reason, so
indexing can skip the file with one clear line and a bad query gets a clear message.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UnreadableImageError
from .avif_size import coded_frame_sizes
from .exif import upright

ImageSource = str | Path | bytes | Image.Image

#: File endings a gallery folder is scanned for; anything else is ignored silently.
#: HEIC/HEIF (iPhone photos) are read through pillow-heif; Pillow 12 reads AVIF itself.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)

# Pillow warns (rather than raises) between MAX_IMAGE_PIXELS and twice that; a gallery
# must not let one huge file eat the machine's memory, so load_image refuses both.
_DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # Pillow's own, where a caller turned it into an error
    MemoryError,
    # pillow-heif raises RuntimeError for a HEIC whose size header is smaller than its image
    RuntimeError,
)


class NotAFileError(OSError):
    """A path named like an image is a FIFO, socket, device or folder: never opened for reading
    (a FIFO would block the reader forever, ``/dev/zero`` would never end)."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(0, f"not a regular file (a {kind})", path)
        self.kind = kind


def file_kind(mode: int) -> str | None:
    """``None`` for a regular file, else what it is, in words."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")):
        if test(mode):
            return kind
    return "special file"


def _nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))


def open_regular(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file, else ``NotAFileError``.

    Checked on the open file itself (``fstat``), so a file swapped for a FIFO after the
    folder was listed is refused too; ``O_NONBLOCK`` makes opening a FIFO return at once
    instead of waiting for a writer. Goes through ``open`` so that it reads as any open.
    """
    handle = open(path, "rb", opener=_nonblocking)  # noqa: SIM115 - returned to the caller
    try:
        kind = file_kind(os.fstat(handle.fileno()).st_mode)
        if kind is not None:
            raise NotAFileError(str(path), kind)
    except BaseException:
        handle.close()
        raise
    return handle


def source_name(source: ImageSource) -> str:
    """A short human name for ``source`` in messages."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__} {getattr(source, 'size', '')}>"


_HEIF_LOCK = threading.Lock()
_heif_registered = False


def register_heif() -> bool:
    """Let Pillow open HEIC/HEIF files (pillow-heif), once; False where it is not installed.

    Done on the first decode rather than at import: pillow-heif takes ~0.1 s to import.
    """
    global _heif_registered
    if not _heif_registered:
        with _HEIF_LOCK:
            if not _heif_registered:
                try:
                    from pillow_heif import register_heif_opener
                except ImportError:
                    return False
                register_heif_opener()
                _heif_registered = True
    return True


def load_image(
    source: ImageSource, draft: tuple[int, int] | None = None, *, max_pixels: int | None = None
) -> Image.Image:
    """Decode ``source`` to an RGB image with EXIF orientation applied.

    ``draft`` is the smallest size the caller needs (width, height): a larger image is
    decoded no bigger than it must be. A JPEG is scaled by its decoder (DCT scaling, by a
    power of two, to at least that size: ~39 ms instead of ~200 ms for a 12-megapixel
    photo); any other format is decoded whole and then reduced by the largest whole factor
    that keeps it at least that size (``Image.reduce``: a box average). Gallery files and
    queries go through this one function with the engine's size, so an image is decoded
    the same way wherever it comes from. ``max_pixels`` is a budget checked against the header before anything is
    decoded: a larger JPEG is decoded reduced to fit it, any other format is refused.
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) always applies, checked
    here rather than through a warnings filter, which is process-wide and not thread-safe.
    Transparent pixels are composited on white, since their stored colour is arbitrary;
    16-bit images are scaled to 8 bits rather than clipped.
    """
    name = source_name(source)
    try:
        if isinstance(source, Image.Image):
            source.load()
            return reduced(to_rgb(upright(source)), draft)
        register_heif()
        fp = io.BytesIO(source) if isinstance(source, bytes) else open_regular(source)
        with fp, Image.open(fp) as opened:
            request = _draft_request(opened, draft, max_pixels)
            if opened.format == "AVIF":
                _check_coded_size(fp, opened.size, max_pixels)
            if request is not None and opened.format == "JPEG":
                opened.draft("RGB", request)
            # seek(0) keeps the first frame of an animation; load() forces the full
            # decode here, so truncated files fail now and not later.
            opened.seek(0)
            opened.load()
            image = upright(opened)  # the EXIF block measured before it is parsed
            image = reduced(to_rgb(image), draft)
            return image.copy() if image is opened else image
    except _DECODE_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, UnidentifiedImageError):
            # Pillow's text names the file object; one wording per cause lets a build
            # summarise 50,000 broken files in one line.
            empty = isinstance(source, bytes) and not source or isinstance(source, (str, Path)) and _size(source) == 0
            reason = "empty file" if empty else "not an image Pillow can read (unknown format)"
        elif isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            reason = f"too many pixels (decompression bomb guard): {reason}"
        elif isinstance(exc, OSError) and exc.errno is not None:
            reason = os_reason(exc)
        raise UnreadableImageError(name, reason) from exc


def reduced(image: Image.Image, draft: tuple[int, int] | None) -> Image.Image:
    """``image`` shrunk by the largest whole factor that keeps it at least ``draft`` (a box
    average of factor x factor pixels), or as it is."""
    if draft is None:
        return image
    factor = min(image.width // max(1, draft[0]), image.height // max(1, draft[1]))
    return image.reduce(factor) if factor >= 2 else image


def _size(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _draft_request(
    opened: Image.Image, draft: tuple[int, int] | None, max_pixels: int | None
) -> tuple[int, int] | None:
    """The JPEG draft size to decode at; refuses an image whose header promises more pixels
    than allowed, before anything is decoded.

    A JPEG over ``max_pixels`` is decoded shrunk by the smallest power of two (up to 8)
    that fits the budget, or by more where ``draft`` already asks for it.
    """
    width, height = opened.size
    pixels = width * height
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and pixels > limit:
        raise Image.DecompressionBombError(f"{width}x{height} is over the limit of {limit} pixels")
    if max_pixels is None or pixels <= max_pixels:
        return draft
    if opened.format == "JPEG":
        for scale in (2, 4, 8):
            if pixels / (scale * scale) <= max_pixels:
                wanted = (-(-width // scale), -(-height // scale))
                return wanted if draft is None or wanted[0] * wanted[1] < draft[0] * draft[1] else draft
    raise ValueError(
        f"{width}x{height} pixels is over the limit of {max_pixels:,} pixels for this image"
    )


def _check_coded_size(fp: BinaryIO, header: tuple[int, int], max_pixels: int | None) -> None:
    """Refuse an AVIF whose coded frames are larger than the limits, or larger than its
    header says: the AV1 decoder allocates the coded size whatever the header claims."""
    limits = [limit for limit in (Image.MAX_IMAGE_PIXELS, max_pixels) if limit is not None]
    for width, height in coded_frame_sizes(fp):
        if limits and width * height > min(limits):
            raise Image.DecompressionBombError(
                f"its AV1 stream codes {width}x{height} pixels (header: {header[0]}x{header[1]}), "
                f"over the limit of {min(limits):,} pixels"
            )


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
