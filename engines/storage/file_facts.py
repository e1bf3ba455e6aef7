"""What the product has learnt about each gallery file, in one JSON file kept by file identity.

A file is named by its stat key (path, size, modification time, inode, change time: see
``items.stamp_of``); a different size or time is a different key, so a fact never outlives
the file it was read from. Each fact is a field of the file's entry (``sha256``: its content
hash; ``photo``: the date, camera and location its header holds), read back only through a
check of its shape, since the file is data from disk.

Several readers may hold the store at once (an index run hashing files, the page reading
dates): each keeps what it learns and, when it saves, reads the file again and merges its
own facts in under a lock, so one never drops what another wrote meanwhile. Facts about
contents rather than files (pixel hashes, keypoints, words, faces) are kept by content hash
elsewhere: they hold for a copy of the same bytes under any name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..galleries.items import GalleryItem

log = logging.getLogger(__name__)

#: Bump when what a field means changes; an older file is read as empty (everything is read again).
FORMAT = 1
#: The files each field was kept in before this store: read once, then removed.
LEGACY = {"sha256": "content-hashes.json", "photo": "photo-info.json"}

_threads = threading.Lock()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time: threads of this process, and processes where ``fcntl`` exists."""
    with _threads:
        try:
            import fcntl  # noqa: PLC0415 - POSIX only; elsewhere threads are still kept apart
        except ImportError:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _version(path: Path) -> tuple[int, int, int] | None:
    """What changes when anyone rewrites the store (it is replaced, never edited in place)."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns


def _read(path: Path) -> dict[str, dict[str, Any]]:
    """The entries of the store at ``path`` (empty where it is missing, damaged or of another format)."""
    from ..galleries.images import open_regular  # noqa: PLC0415 - galleries import this package

    try:
        with open_regular(path) as handle:  # a FIFO in its place is refused, not waited on
            found = json.loads(handle.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # damaged: the facts are read from the files again
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    entries = found.get("files") if isinstance(found, dict) and found.get("format") == FORMAT else None
    if not isinstance(entries, dict):
        return {}
    return {key: entry for key, entry in entries.items() if isinstance(key, str) and isinstance(entry, dict)}


def _legacy(path: Path) -> dict[str, dict[str, Any]]:
    """The two files this store replaces, as entries (a flat ``{stat key: fact}`` each)."""
    entries: dict[str, dict[str, Any]] = {}
    for field, name in LEGACY.items():
        old = path.with_name(name)
        if not old.is_file():
            continue
        try:
            found = json.loads(old.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", old, exc)
            continue
        for key, value in (found.items() if isinstance(found, dict) else ()):
            if isinstance(key, str):
                entries.setdefault(key, {})[field] = value
    return entries


class FileFacts:
    """The store at ``path`` (``None``: in memory only); ``get``/``put`` a field of a file's entry."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        self._learnt: dict[str, dict[str, Any]] = {}
        self._migrated = False
        self._version: tuple[int, int, int] | None = None
        if path is not None:
            self._version = _version(path)
            self._entries = _read(path)
            if not self._entries and any(path.with_name(name).is_file() for name in LEGACY.values()):
                # Upgrading keeps what the older files knew: a large library is not hashed again.
                self._learnt = _legacy(path)
                self._entries = {key: dict(entry) for key, entry in self._learnt.items()}
                self._migrated = True

    def get(self, stamp: str, field: str, valid: Callable[[object], bool]) -> Any:
        """Field ``field`` of the file ``stamp`` names, or ``None`` when unknown or not ``valid``."""
        value = self._entries.get(stamp, {}).get(field)
        return value if value is not None and valid(value) else None

    def put(self, stamp: str, field: str, value: object) -> None:
        self._entries.setdefault(stamp, {})[field] = value
        self._learnt.setdefault(stamp, {})[field] = value

    def save(self) -> None:
        """Merge what this reader learnt into the file (atomically); a failure costs only the shortcut."""
        if self.path is None or not self._learnt:
            return
        try:
            with _locked(self.path):
                if self._version is None or _version(self.path) != self._version:
                    # Someone saved since this reader opened it: theirs first, then what this one learnt.
                    entries = _read(self.path)
                    for stamp, fields in self._learnt.items():
                        entries.setdefault(stamp, {}).update(fields)
                    self._entries = entries
                atomic_write_bytes(self.path, json.dumps({"format": FORMAT, "files": self._entries}).encode())
                self._version = _version(self.path)
        except OSError as exc:
            log.warning("cannot keep what was learnt of the files in %s: %s", self.path, exc)
            return
        self._learnt = {}
        if self._migrated:
            for name in LEGACY.values():
                with suppress(OSError):
                    self.path.with_name(name).unlink()
            self._migrated = False


class ContentHashes:
    """SHA-256 of gallery files, remembered by file identity in the file facts at ``path``.

    Engines that key vectors by content (CLIP, Chroma) would otherwise read every file
    again on every index run just to hash it; with this, re-indexing an unchanged folder
    only lists and stats it. A file whose size or time changed is read and hashed anew.
    """

    def __init__(self, path: Path | None) -> None:
        self.facts = FileFacts(path)

    def of(self, item: GalleryItem) -> str:
        """The item's content hash; may raise ``OSError`` for a file that cannot be read."""
        if item.path is None:
            return item.content_hash
        stamp = item.stat_key()
        found = self.facts.get(stamp, "sha256", _is_hash)
        if found is None:
            found = item.content_hash
            self.facts.put(stamp, "sha256", found)
        return str(found)

    def save(self) -> None:
        """Keep what was learnt (atomically, merged with what others kept meanwhile)."""
        self.facts.save()


def _is_hash(value: object) -> bool:
    # Read by shape: a hash is 64 hexadecimal digits, anything else is read again.
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
