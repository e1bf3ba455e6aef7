"""Which two files hold the same pixels in other encodings (a JPEG exported as PNG, an EXIF
edit): image sizes from the headers, SHA-256 of the decoded RGB pixels, each read once.

Both are kept by content hash in ``pixel-hashes.json`` of the cache folder: the same bytes
always decode to the same pixels, so an entry never goes stale, and a repeat duplicates run
decodes nothing (a 12-megapixel photo costs ~40 ms to decode and ~10 ms to hash). The first
run decodes the photos it must in parallel threads (Pillow's decoder and hashlib release the
GIL). The file is data from disk: an entry of the wrong shape is dropped and computed again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from ..galleries.items import GalleryItem
from ..storage.cache import atomic_write_bytes
from ..workspace import Workspace

log = logging.getLogger(__name__)

#: Bump when what a stored pixel hash means changes (decoding, what is hashed).
FORMAT = 1
_HEX = re.compile(r"[0-9a-f]{64}\Z")
#: Photos decoded at once: each 12-megapixel one holds ~36 MB while it is hashed.
WORKERS = max(1, min(4, os.cpu_count() or 1))

def _valid(value: object) -> bool:
    if not isinstance(value, list) or len(value) != 2:
        return False
    size, digest = value
    good_size = size is None or (isinstance(size, list) and len(size) == 2
                                 and all(isinstance(v, int) and 0 < v < 1 << 20 for v in size))
    return good_size and (digest is None or isinstance(digest, str) and bool(_HEX.match(digest)))


class PixelHashes:
    """Sizes and pixel hashes of ``items`` (rows), kept by their content hashes under ``folder``
    (the cache folder; ``None``: in memory only). A read that fails (a file gone since indexing)
    is remembered for this run only: the same content may be readable again later."""

    def __init__(self, items: Sequence[GalleryItem], content_hashes: Sequence[str | None] | None,
                 folder: Path | None) -> None:
        self.items = items
        self.content = list(content_hashes) if content_hashes is not None else [None] * len(items)
        self.path = Workspace(folder).pixel_hashes if folder is not None else None
        #: [size, pixel hash] by content hash (kept), or by ``row:N`` for a row without one (not kept).
        self._entries: dict[str, list[object]] = self._load()
        self._failed: set[tuple[int, int]] = set()  # (row, 0 size / 1 hash) unreadable in this run
        self._changed = False

    def _load(self) -> dict[str, list[object]]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            entries = raw["entries"] if isinstance(raw, dict) and raw.get("format") == FORMAT else {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("pixel hashes in %s not used (%s); they are computed again", self.path, exc)
            return {}
        if not isinstance(entries, dict):
            return {}
        kept = {key: value for key, value in entries.items() if isinstance(key, str) and _HEX.match(key) and _valid(value)}
        if len(kept) != len(entries):
            log.warning("%d damaged pixel hash entries in %s dropped", len(entries) - len(kept), self.path)
        return kept

    def _entry(self, row: int) -> list[object]:
        key = self.content[row] or f"row:{row}"
        return self._entries.setdefault(key, [None, None])

    def _fill(self, row: int, slot: int, value: object) -> None:
        if value is not None:
            self._entry(row)[slot] = value
            self._changed = self._changed or self.content[row] is not None
        else:
            self._failed.add((row, slot))

    def size(self, row: int) -> tuple[int, int] | None:
        entry = self._entry(row)
        if entry[0] is None and (row, 0) not in self._failed:
            self._fill(row, 0, self._read_size(row))
        size = entry[0]
        return (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else None

    def _read_size(self, row: int) -> list[int] | None:
        item = self.items[row]
        try:
            with Image.open(item.checked_path() if item.path is not None else io.BytesIO(item.data or b"")) as image:
                return list(image.size)
        except Exception:  # noqa: BLE001 - a file gone or unreadable since indexing is not an exact copy
            return None

    def digest(self, row: int) -> str | None:
        entry = self._entry(row)
        if entry[1] is None and (row, 1) not in self._failed:
            self._fill(row, 1, self._read_digest(row))
        return None if entry[1] is None else str(entry[1])

    def _read_digest(self, row: int) -> str | None:
        try:
            image = self.items[row].open()
        except Exception:  # noqa: BLE001 - as above
            return None
        digest = hashlib.sha256(f"{image.size}".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()

    def prepare(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Read, in parallel, the pixel hashes the checks of ``pairs`` will need: both rows of
        each pair of one size, one row per content."""
        wanted: dict[str, int] = {}
        for a, b in pairs:
            size = self.size(a)
            if size is None or size != self.size(b):
                continue
            for row in (a, b):
                if self._entry(row)[1] is None:
                    wanted.setdefault(self.content[row] or f"row:{row}", row)
        rows = sorted(wanted.values())
        if rows:
            with ThreadPoolExecutor(min(WORKERS, len(rows))) as pool:
                for row, digest in zip(rows, pool.map(self._read_digest, rows), strict=True):
                    self._fill(row, 1, digest)

    def same(self, a: int, b: int) -> bool:
        """Whether rows ``a`` and ``b`` decode to the same pixels."""
        size = self.size(a)
        if size is None or size != self.size(b):
            return False
        first = self.digest(a)
        return first is not None and first == self.digest(b)

    def save(self) -> None:
        """Keep what was read for the next run (atomically; a failure only costs that)."""
        if self.path is None or not self._changed:
            return
        kept = {key: entry for key, entry in self._entries.items() if _HEX.match(key)}
        try:
            atomic_write_bytes(self.path, json.dumps({"format": FORMAT, "entries": kept}).encode())
            self._changed = False
        except OSError as exc:
            log.warning("pixel hashes not kept in %s (%s)", self.path, exc)
