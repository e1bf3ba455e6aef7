"""A look at an embedded Chroma collection's HNSW files before Chroma loads them.

Chroma's native HNSW code trusts its files: a damaged ``header.bin`` or a truncated
``data_level0.bin`` crashed the whole process (a segmentation fault, seen in the tests) rather
than raising an error the app could answer. So before a collection's graph is first read, its
files are checked against what its own header says (layout as chroma-hnswlib writes it:
version 1, then the index's sizes), and a collection whose files disagree is treated as
damaged: dropped and built again, as for any other unreadable collection.
"""

from __future__ import annotations

import math
import sqlite3
import struct
from pathlib import Path

HEADER_BYTES = 100


def hnsw_problem(folder: Path) -> str | None:
    """What is wrong with the HNSW files in ``folder`` (one VECTOR segment), or ``None``
    (sound, or not written yet)."""
    header = folder / "header.bin"
    if not header.is_file():
        return None  # nothing persisted yet: Chroma keeps the graph in memory
    raw = header.read_bytes()
    if len(raw) < HEADER_BYTES:
        return f"its header is {len(raw)} bytes"
    (version,) = struct.unpack_from("<i", raw, 0)
    _, most, count, size, label_at, data_at = struct.unpack_from("<6Q", raw, 4)
    m_max, m_max0, m = struct.unpack_from("<3Q", raw, 60)
    (mult,) = struct.unpack_from("<d", raw, 84)
    if version != 1:
        return f"its header is of version {version}"
    if not (count <= most <= 2**34 and 0 < size <= 2**20 and label_at < size and data_at < size):
        return "its header's sizes do not hold together"
    if not (0 < m <= 4096 and m <= m_max <= m_max0 <= 8192 and math.isfinite(mult) and mult > 0):
        return "its header's graph settings are out of range"
    data = folder / "data_level0.bin"
    if data.is_file() and data.stat().st_size < count * size:
        return f"data_level0.bin holds {data.stat().st_size:,} bytes of the {count * size:,} its header counts"
    return None


def damaged(folder: Path, collection: str) -> str | None:
    """Why the embedded database in ``folder`` cannot safely load ``collection``'s graph, or ``None``."""
    catalog = folder / "chroma.sqlite3"
    if not catalog.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as connection:
            segments = connection.execute(
                "SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id "
                "WHERE c.name = ? AND s.scope = 'VECTOR'", (collection,)).fetchall()
    except sqlite3.Error:
        return None  # another layout: Chroma itself says what it makes of it
    for (segment,) in segments:
        problem = hnsw_problem(folder / str(segment))
        if problem is not None:
            return f"the HNSW files of segment {segment}: {problem}"
    return None
