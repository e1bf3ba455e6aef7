"""Vectors shipped beside a folder gallery: a fresh copy of the folder searches at once.

``image-search index --data DIR --ship`` writes ``DIR/.image-search-index``: the product's
own ``datasets`` export without the images (content hash, vector and the identity of the
model that made it, per image; never a pickle). ``load_gallery(DIR)`` points the database
images at it; when the indexing pipeline must embed one, it first looks for the vector
shipped for those bytes: an engine of that identity uses it without decoding or embedding,
any other engine or model ignores it and reads the image. A Space ships its ``data/``
gallery this way: its first search only embeds the query.

The folder is data from outside like any upload: a row is used only for a file whose bytes
hash to it (an edited file is embedded anew), and its vector passes the pipeline's checks
(finite, the engine's length, a unit vector) before it is trusted. A folder that does not
read is logged and ignored: the images are there to index.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path
from typing import Any

from ..errors import EngineError
from .items import GalleryItem

log = logging.getLogger(__name__)

#: The shipped index's folder inside the gallery folder (hidden: never listed as images).
SHIPPED = ".image-search-index"
#: Rows past this are not read: a shipped index is for galleries a repository carries.
MAX_ROWS = 200_000


def read_shipped(folder: Path) -> dict[str, tuple[str, Any]]:
    """``{content hash: (identity, vector)}`` of the index shipped in ``folder``; raises on
    anything that is not one. Read with pyarrow from the files ``save_to_disk`` wrote
    (``state.json`` names them): importing ``datasets`` alone would cost a fresh Space's first
    search 0.6 s."""
    import pyarrow as pa

    state = json.loads((folder / "state.json").read_text())
    names = [entry.get("filename") for entry in state.get("_data_files", [])] if isinstance(state, dict) else []
    if not names or not all(isinstance(n, str) and n == Path(n).name and n.endswith(".arrow") for n in names):
        raise ValueError("state.json names no arrow files of this folder")
    tables = []
    for name in names:
        with pa.memory_map(str(folder / name)) as source:
            tables.append(pa.ipc.open_stream(source).read_all())
    table = pa.concat_tables(tables)
    if table.num_rows > MAX_ROWS:
        raise ValueError(f"{table.num_rows} rows, more than {MAX_ROWS}")
    column = table.column("vector").combine_chunks()
    if not pa.types.is_fixed_size_list(column.type) or column.type.value_type != pa.float32():
        raise ValueError(f"the vector column holds {column.type}, not fixed-length float32 lists")
    vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(table.num_rows, column.type.list_size)
    found = {}
    for digest, vector, identity in zip(table.column("content_hash").to_pylist(), vectors,
                                        table.column("index_identity").to_pylist(), strict=True):
        if isinstance(digest, str) and len(digest) == 64 and isinstance(identity, str):
            found[digest] = (identity, vector)
    return found


def with_shipped(folder: str, splits: dict[str, list[GalleryItem]]) -> dict[str, list[GalleryItem]]:
    """The ``splits`` of the folder gallery at ``folder``, its database images pointed at the
    index shipped there. Nothing is read now: an engine whose store already holds a file never
    asks (a warm start does not import pyarrow or hash a file for it)."""
    shipped = Path(folder) / SHIPPED
    if not shipped.is_dir():
        return splits
    where = str(shipped)
    return {**splits, "train": [dataclasses.replace(item, shipped=where) for item in splits["train"]]}


_tables: dict[str, tuple[int, dict[str, tuple[str, Any]]]] = {}
_lock = threading.Lock()


def shipped_vector(item: GalleryItem) -> tuple[str, Any] | None:
    """(identity, vector) shipped for ``item``'s bytes, or ``None``: none shipped, the file was
    edited since, it cannot be read now (the engine then says why), or the shipped index does
    not read (logged once)."""
    if item.shipped is None or item.refused is not None:
        return None
    folder = Path(item.shipped)
    with _lock:
        try:
            stamp = (folder / "state.json").stat().st_mtime_ns
        except OSError:
            return None
        known = _tables.get(item.shipped)
        if known is None or known[0] != stamp:
            try:
                table = read_shipped(folder)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises many types; the images are embedded instead
                log.warning("the vectors shipped in %s cannot be used (%s: %s); embedding the images", folder,
                            type(exc).__name__, exc)
                table = {}
            known = _tables[item.shipped] = (stamp, table)
    if not known[1]:
        return None
    try:
        return known[1].get(item.content_hash)
    except (OSError, EngineError):
        return None
