"""An on-disk cache of feature vectors, keyed by a string per image.

Each cache lives in a folder named after a hash of its *namespace* (cache format version,
engine, feature settings or model identity), so vectors made with other settings, another
model or an older version of this code are never read back as if they were current.

Vectors are appended as shard files while indexing runs, each written to a temporary
name and renamed into place, so a process killed mid-index leaves only whole shards: the
next run reads them and computes just what is missing. Shards are merged at the end of a
complete run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .gallery import GalleryItem

log = logging.getLogger(__name__)

#: Bump when what a cached vector means changes (decoding, preprocessing, layout).
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/image-search``, else ``~/.cache/image-search``; engines take ``cache_dir`` to override."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "image-search"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file renamed to ``path`` once whole and synced, so that
    readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda handle: handle.write(payload))


class VectorCache:
    """Vectors for one namespace, stored as shards under ``root/<hash of namespace>/``."""

    def __init__(self, root: str | Path, namespace: Mapping[str, object]) -> None:
        self.namespace = {"cache_format": CACHE_FORMAT, **namespace}
        encoded = json.dumps(self.namespace, sort_keys=True, default=str)
        self.folder = Path(root) / hashlib.sha256(encoded.encode()).hexdigest()[:20]
        self._encoded = encoded
        #: Shards this object read or wrote: the only ones ``compact(known)`` may merge away.
        self._seen: set[Path] = set()
        #: (keys, matrix) when ``load`` found exactly one shard: a caller whose rows are
        #: those keys in that order can use the matrix as it is, without a copy.
        self.whole: tuple[list[str], np.ndarray] | None = None

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npz"))

    def load(self) -> dict[str, np.ndarray]:
        """Every vector stored so far; unreadable shards are ignored (and logged)."""
        meta = self.folder / "namespace.json"
        if not meta.exists():
            return {}
        self._ensure_namespace()
        vectors: dict[str, np.ndarray] = {}
        shards = self._shards()
        self.whole = None
        for shard in shards:
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, matrix = data["keys"], data["vectors"]
                vectors.update(zip(keys.tolist(), matrix, strict=True))
                self._seen.add(shard)
                if len(shards) == 1:
                    self.whole = (keys.tolist(), matrix)
            except FileNotFoundError:
                continue  # merged away by another process meanwhile
            except Exception as exc:  # a damaged shard must not break indexing
                log.warning("ignoring unreadable cache shard %s: %s", shard, exc)
        return vectors

    def _ensure_namespace(self) -> None:
        """Write ``namespace.json`` if it is missing or damaged.

        The folder's name is a hash of the namespace, so its shards belong to it whatever
        the file says; a file that does not read back as the namespace was damaged (a
        full disk, a bad sector) and is rewritten, atomically, rather than turning the
        cache off for good.
        """
        meta = self.folder / "namespace.json"
        try:
            if meta.read_text() == self._encoded:
                return
            log.warning("the cache's %s is damaged; rewriting it", meta)
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("the cache's %s cannot be read (%s); rewriting it", meta, exc)
        atomic_write_bytes(meta, self._encoded.encode())

    def append(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors`` (one row per key) as a new shard."""
        if not keys:
            return
        self._ensure_namespace()
        self._write_shard(keys, vectors)

    def _write_shard(self, keys: Sequence[str], vectors: np.ndarray) -> Path:
        """Write one shard straight to a temporary file, renamed into place when whole.

        Streamed to the file rather than built in memory first: a shard of 100,000 pixel
        vectors is 1.2 GB, and a second copy of it would double the indexing's peak memory.
        """
        path = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        atomic_write(path, lambda handle: np.savez(handle, keys=np.asarray(list(keys), dtype=str),
                                                   vectors=np.asarray(vectors)))
        self._seen.add(path)
        return path

    def compact(self, keys: Sequence[str] | None = None, vectors: np.ndarray | None = None) -> None:
        """Merge all shards into one; a crash part-way leaves duplicates, never gaps.

        ``keys`` and ``vectors`` (one row per key) are everything this object read or wrote,
        when the caller holds them as one matrix: they are written as they are, in that
        order, instead of reading every shard a second time and stacking a copy.
        """
        if vectors is not None:
            # Shards another process wrote meanwhile hold vectors the caller lacks: keep them.
            shards = [shard for shard in self._shards() if shard in self._seen]
        else:
            shards = self._shards()
        if len(shards) < 2:
            return
        if vectors is None:
            merged = self.load()
            keys = list(merged)
            vectors = np.stack([merged[k] for k in keys]) if keys else None
        new = self._write_shard(keys or [], vectors) if vectors is not None and len(vectors) else None
        for shard in shards:
            if shard != new:
                shard.unlink(missing_ok=True)


class ContentHashes:
    """SHA-256 of gallery files, remembered by (path, size, modification time).

    Engines that key vectors by content (CLIP, Chroma) would otherwise read every file
    again on every index run just to hash it; with this, re-indexing an unchanged folder
    only lists and stats it. A file whose size or time changed is read and hashed anew.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._known: dict[str, str] = json.loads(path.read_text())
        except FileNotFoundError:
            self._known = {}
        except (OSError, ValueError) as exc:  # damaged: start again, it is only a shortcut
            log.warning("ignoring unreadable %s: %s", path, exc)
            self._known = {}
        self._added = 0

    def of(self, item: GalleryItem) -> str:
        """The item's content hash; may raise ``OSError`` for a file that cannot be read."""
        if item.path is None:
            return item.content_hash
        stamp = item.stat_key()
        found = self._known.get(stamp)
        if found is None:
            found = self._known[stamp] = item.content_hash
            self._added += 1
        return found

    def save(self) -> None:
        """Write what was learnt (atomically), if anything was."""
        if self._added:
            atomic_write_bytes(self.path, json.dumps(self._known).encode())
            self._added = 0
