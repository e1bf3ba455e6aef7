"""The size an AVIF file really decodes to, read from its AV1 sequence headers.

Pillow takes an AVIF's size from the container's ``ispe`` box, but the AV1 decoder
allocates whatever the coded stream's sequence header says: a 3 KB file whose ``ispe``
claims 60x40 decoded a 16,000-pixel-wide frame (~400 MB) behind both pixel limits. So
before an AVIF is decoded, every coded item's ``max_frame_width`` x ``max_frame_height``
is read here (the ISO-BMFF ``iloc`` box gives where each item's data starts, and an
animation's ``stco`` where its track's first sample does; the first OBUs there are a
temporal delimiter and the sequence header) and checked against the same limits as the
header. Reads are bounded: ``meta`` and ``moov`` up to 1 MiB each, 64 bytes per item.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_META_LIMIT = 1 << 20
_MAX_ITEMS = 4096
_OBU_SEQUENCE_HEADER = 1
_OBU_TEMPORAL_DELIMITER = 2
_OBU_PADDING = 15


class _Bits:
    """An MSB-first bit reader over a short byte string (AV1's ``f(n)``)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def f(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("AV1 sequence header cut short")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.f(1):
            zeros += 1
            if zeros >= 32:
                raise ValueError("AV1 uvlc too long")
        return self.f(zeros) + (1 << zeros) - 1


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise ValueError("AV1 OBU size cut short")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("AV1 OBU size too long")


def sequence_header_size(payload: bytes) -> tuple[int, int]:
    """(max_frame_width, max_frame_height) from an AV1 sequence header OBU's payload
    (AV1 specification, section 5.5)."""
    bits = _Bits(payload)
    bits.f(3)  # seq_profile
    bits.f(1)  # still_picture
    if bits.f(1):  # reduced_still_picture_header
        bits.f(5)  # seq_level_idx[0]
    else:
        decoder_model = False
        buffer_delay_length = 0
        if bits.f(1):  # timing_info_present_flag
            bits.f(32), bits.f(32)
            if bits.f(1):  # equal_picture_interval
                bits.uvlc()
            decoder_model = bool(bits.f(1))
            if decoder_model:
                buffer_delay_length = bits.f(5) + 1
                bits.f(32), bits.f(5), bits.f(5)
        initial_display_delay = bits.f(1)
        for _ in range(bits.f(5) + 1):  # operating points
            bits.f(12)
            if bits.f(5) > 7:
                bits.f(1)  # seq_tier
            if decoder_model and bits.f(1):
                bits.f(buffer_delay_length), bits.f(buffer_delay_length), bits.f(1)
            if initial_display_delay and bits.f(1):
                bits.f(4)
    width_bits = bits.f(4) + 1
    height_bits = bits.f(4) + 1
    return bits.f(width_bits) + 1, bits.f(height_bits) + 1


def _first_sequence_header(data: bytes) -> tuple[int, int] | None:
    pos = 0
    while pos < len(data):
        header = data[pos]
        kind = (header >> 3) & 0xF
        has_size = header & 0x02
        pos += 2 if header & 0x04 else 1  # the extension byte
        if not has_size:
            # AVIF items store OBUs with sizes (AV1-ISOBMFF); without one the rest is the OBU
            size = len(data) - pos
        else:
            size, pos = _leb128(data, pos)
        if kind == _OBU_SEQUENCE_HEADER:
            return sequence_header_size(data[pos : pos + size])
        if kind not in (_OBU_TEMPORAL_DELIMITER, _OBU_PADDING):
            return None
        pos += size
    return None


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the ISO-BMFF boxes in ``data[start:end]``."""
    found = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        found.append((kind, pos + header, pos + size))
        pos += size
    return found


def _item_offsets(iloc: bytes) -> list[int]:
    """File offsets where each item's first extent starts (construction method 0 only)."""
    version = iloc[0]
    pos = 4
    sizes = iloc[pos]
    offset_size, length_size = sizes >> 4, sizes & 0xF
    base_size, index_size = iloc[pos + 1] >> 4, (iloc[pos + 1] & 0xF if version in (1, 2) else 0)
    pos += 2

    def number(width: int) -> int:
        nonlocal pos
        if width not in (0, 2, 4, 8) or pos + width > len(iloc):
            raise ValueError("bad iloc box")
        value = int.from_bytes(iloc[pos : pos + width], "big") if width else 0
        pos += width
        return value

    count = number(2 if version < 2 else 4)
    offsets = []
    for _ in range(min(count, _MAX_ITEMS)):
        number(2 if version < 2 else 4)  # item_ID
        method = number(2) & 0xF if version in (1, 2) else 0
        number(2)  # data_reference_index
        base = number(base_size)
        extents = number(2)
        for extent in range(extents):
            if index_size:
                number(index_size)
            offset = number(offset_size)
            number(length_size)
            if extent == 0 and method == 0:
                offsets.append(base + offset)
    return offsets


def _top_level(fp: BinaryIO) -> dict[bytes, bytes]:
    """The ``meta`` and ``moov`` boxes' payloads (each at most 1 MiB), found by seeking."""
    found: dict[bytes, bytes] = {}
    fp.seek(0, 2)
    end = fp.tell()
    pos = 0
    for _ in range(64):
        fp.seek(pos)
        head = fp.read(16)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1 and len(head) == 16:
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise ValueError("damaged AVIF container (a box shorter than its header)")
        if kind in (b"meta", b"moov"):
            if size - header > _META_LIMIT:
                raise ValueError(f"damaged AVIF container (a {kind.decode()} box of {size:,} bytes)")
            fp.seek(pos + header)
            found[kind] = fp.read(size - header)
        pos += size
        if pos >= end:
            break
    return found


def _track_offsets(moov: bytes) -> list[int]:
    """Where each track's first chunk starts (``moov/trak/mdia/minf/stbl/stco`` or ``co64``)."""
    offsets = []
    for kind, start, end in _boxes(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        boxes = [(kind, start, end)]
        for wanted in (b"mdia", b"minf", b"stbl"):
            boxes = [box for box in _boxes(moov, boxes[0][1], boxes[0][2]) if box[0] == wanted][:1]
            if not boxes:
                break
        for kind, start, _end in _boxes(moov, boxes[0][1], boxes[0][2]) if boxes else []:
            if kind in (b"stco", b"co64") and struct.unpack(">I", moov[start + 4 : start + 8])[0]:
                width = 4 if kind == b"stco" else 8
                offsets.append(int.from_bytes(moov[start + 8 : start + 8 + width], "big"))
    return offsets


def coded_frame_sizes(fp: BinaryIO) -> list[tuple[int, int]]:
    """The largest frame each AV1 item or track of the AVIF file ``fp`` may decode to.

    Raises ``ValueError`` for a container too damaged to tell; leaves ``fp`` at its start.
    """
    sizes: list[tuple[int, int]] = []
    try:
        boxes = _top_level(fp)
        offsets: list[int] = []
        meta = boxes.get(b"meta", b"")
        for kind, start, end in _boxes(meta, 4, len(meta)):
            if kind == b"iloc":
                offsets += _item_offsets(meta[start:end])
        offsets += _track_offsets(boxes.get(b"moov", b""))
        for offset in offsets[:_MAX_ITEMS]:
            fp.seek(offset)
            size = _first_sequence_header(fp.read(64))
            if size is not None:
                sizes.append(size)
    except (IndexError, struct.error) as exc:
        raise ValueError(f"damaged AVIF container ({exc})") from exc
    finally:
        fp.seek(0)
    return sizes
