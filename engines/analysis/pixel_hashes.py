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
    (the cache folder; ``None``: in memory only)."""

    def __init__(self, items: Sequence[GalleryItem], content_hashes: Sequence[str | None] | None,
                 folder: Path | None) -> None:
        self.items = items
        self.content = list(content_hashes) if content_hashes is not None else [None] * len(items)
        self.path = Workspace(folder).pixel_hashes if folder is not None else None
        self._sizes: dict[int, tuple[int, int] | None] = {}
        self._digests: dict[int, str | None] = {}
        self._stored: dict[str, list[object]] = self._load()
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

    def _known(self, row: int) -> list[object] | None:
        key = self.content[row]
        return self._stored.get(key) if key is not None else None

    def size(self, row: int) -> tuple[int, int] | None:
        if row not in self._sizes:
            known = self._known(row)
            stored = known[0] if known is not None else None
            if known is not None:
                self._sizes[row] = (int(stored[0]), int(stored[1])) if isinstance(stored, list) else None
            else:
                self._sizes[row] = self._read_size(row)
                self._remember(row)
        return self._sizes[row]

    def _read_size(self, row: int) -> tuple[int, int] | None:
        item = self.items[row]
        try:
            with Image.open(item.checked_path() if item.path is not None else io.BytesIO(item.data or b"")) as image:
                return image.size
        except Exception:  # noqa: BLE001 - a file gone or unreadable since indexing is not an exact copy
            return None

    def digest(self, row: int) -> str | None:
        if row not in self._digests:
            known = self._known(row)
            if known is not None and known[1] is not None:
                self._digests[row] = str(known[1])
            else:
                self._digests[row] = self._read_digest(row)
                self._remember(row)
        return self._digests[row]

    def _read_digest(self, row: int) -> str | None:
        try:
            image = self.items[row].open()
        except Exception:  # noqa: BLE001 - as above
            return None
        digest = hashlib.sha256(f"{image.size}".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()

    def _remember(self, row: int) -> None:
        key = self.content[row]
        if key is None:
            return
        size, digest = self._sizes.get(row), self._digests.get(row)
        known = self._stored.get(key)
        entry = [list(size) if size is not None else (known[0] if known else None),
                 digest if digest is not None else (known[1] if known else None)]
        if entry != known:
            self._stored[key] = entry
            self._changed = True

    def prepare(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Read, in parallel, the pixel hashes the checks of ``pairs`` will need: both rows of
        each pair of one size (one row per content)."""
        wanted: dict[str, int] = {}
        loose: list[int] = []
        for a, b in pairs:
            size = self.size(a)
            if size is None or size != self.size(b):
                continue
            for row in (a, b):
                known = self._known(row)
                if row in self._digests or known is not None and known[1] is not None:
                    continue
                key = self.content[row]
                if key is None:
                    loose.append(row)
                else:
                    wanted.setdefault(key, row)
        rows = sorted(set(wanted.values()) | set(loose))
        if not rows:
            return
        with ThreadPoolExecutor(min(WORKERS, len(rows))) as pool:
            for row, digest in zip(rows, pool.map(self._read_digest, rows), strict=True):
                self._digests[row] = digest
                self._remember(row)

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
        try:
            atomic_write_bytes(self.path, json.dumps({"format": FORMAT, "entries": self._stored}).encode())
            self._changed = False
        except OSError as exc:
            log.warning("pixel hashes not kept in %s (%s)", self.path, exc)
