"""EXIF read without trusting it: a block is measured before Pillow parses it.

Pillow reads ``count x unit`` bytes for every tag of an IFD, wherever its offset points, so a
2 MB block whose 4,000 entries all point at the same 2 MB blob asks for 8 GB (an IFD may hold
65,535 entries). A camera's EXIF is under 64 KB (a JPEG's APP1 segment cannot be larger). So
the raw block is walked first (its IFDs, their entry counts and the bytes each tag claims),
and a block that is too large, claims more bytes than it holds, or loops is dropped whole:
the photo is then read as one without EXIF (no orientation, no date), never refused.
"""

from __future__ import annotations

import logging
import struct

from PIL import Image

log = logging.getLogger(__name__)

#: The largest EXIF block read (a JPEG's cannot exceed 64 KB; HEIC and PNG have no such cap).
MAX_EXIF_BYTES = 256 * 1024
#: Entries one IFD may have (cameras write a few dozen; the format allows 65,535).
MAX_ENTRIES = 1000
#: IFDs walked at most (IFD0, its thumbnail IFD, Exif, GPS, interoperability, and some slack).
MAX_IFDS = 8
#: Bytes of TIFF field type -> size of one value.
_UNIT = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
#: Tags that point at another IFD: Exif, GPS, interoperability.
_SUB_IFDS = (0x8769, 0x8825, 0xA005)
ORIENTATION = 0x0112
#: Pillow's transposition for each EXIF orientation (as ``ImageOps.exif_transpose``).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_problem(raw: bytes) -> str | None:
    """Why the EXIF block ``raw`` must not be parsed, or ``None`` when it is safe to."""
    if len(raw) > MAX_EXIF_BYTES:
        return f"{len(raw):,} bytes (the limit is {MAX_EXIF_BYTES:,})"
    data = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None  # not TIFF-shaped: Pillow reads nothing from it
    order = "<" if data[:2] == b"II" else ">"
    claimed = 0
    pending, seen = [struct.unpack(order + "I", data[4:8])[0]], set()
    while pending:
        offset = pending.pop()
        if offset == 0 or offset in seen:
            continue
        seen.add(offset)
        if len(seen) > MAX_IFDS:
            return "too many IFDs"
        if offset + 2 > len(data):
            continue  # Pillow stops at a truncated IFD
        count = struct.unpack(order + "H", data[offset:offset + 2])[0]
        if count > MAX_ENTRIES:
            return f"an IFD of {count:,} entries"
        for number in range(count):
            start = offset + 2 + 12 * number
            if start + 12 > len(data):
                break
            tag, kind, values, value = struct.unpack(order + "HHII", data[start:start + 12])
            claimed += _UNIT.get(kind, 0) * values
            if tag in _SUB_IFDS:
                pending.append(value)
        if claimed > 2 * len(data) + 4096:
            return f"its tags claim {claimed:,} bytes of a {len(data):,}-byte block"
        end = offset + 2 + 12 * count
        if end + 4 <= len(data):
            pending.append(struct.unpack(order + "I", data[end:end + 4])[0])
    return None


def _raw_exif(image: Image.Image) -> bytes | None:
    """The EXIF block as Pillow would parse it for ``getexif`` (JPEG, PNG, WebP, HEIC, AVIF)."""
    raw = image.info.get("exif")
    if raw is None and "Raw profile type exif" in image.info:
        text = str(image.info["Raw profile type exif"])
        try:
            raw = bytes.fromhex("".join(text.split("\n")[3:]))
        except ValueError:
            return b""
    return raw if isinstance(raw, bytes) else None


def safe_exif(image: Image.Image) -> Image.Exif:
    """``image.getexif()``, or an empty block where the raw block fails ``exif_problem``.

    A PNG's ``eXIf`` chunk may follow its pixels: Pillow reads it on ``load``, as ``getexif``
    would. A TIFF's tags were parsed when it was opened, so Pillow's own block is used.
    """
    raw = _raw_exif(image)
    if raw is None and image.format == "PNG":
        image.load()
        raw = _raw_exif(image)
    if raw is not None:
        problem = exif_problem(raw)
        if problem is not None:
            log.debug("EXIF of %s ignored: %s", image.format, problem)
            return Image.Exif()
    return image.getexif()


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 to 8), 1 where there is none or the block is unsafe."""
    try:
        value = safe_exif(image).get(ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError, struct.error):
        return 1
    return value if isinstance(value, int) and value in range(1, 9) else 1


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says (``ImageOps.exif_transpose`` without
    parsing an unsafe block); the same object where nothing is to be done."""
    method = _TRANSPOSE.get(orientation(image))
    return image if method is None else image.transpose(method)
