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
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Bump when what a cached vector means changes (decoding, preprocessing, layout).
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/image-search``, else ``~/.cache/image-search``; engines take ``cache_dir`` to override."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "image-search"


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VectorCache:
    """Vectors for one namespace, stored as shards under ``root/<hash of namespace>/``."""

    def __init__(self, root: str | Path, namespace: Mapping[str, object]) -> None:
        self.namespace = {"cache_format": CACHE_FORMAT, **namespace}
        encoded = json.dumps(self.namespace, sort_keys=True, default=str)
        self.folder = Path(root) / hashlib.sha256(encoded.encode()).hexdigest()[:20]
        self._encoded = encoded
        #: Shards this object read or wrote: the only ones ``compact(known)`` may merge away.
        self._seen: set[Path] = set()

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npz"))

    def load(self) -> dict[str, np.ndarray]:
        """Every vector stored so far; unreadable shards are ignored (and logged)."""
        meta = self.folder / "namespace.json"
        if not meta.exists():
            return {}
        self._ensure_namespace()
        vectors: dict[str, np.ndarray] = {}
        for shard in self._shards():
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, matrix = data["keys"], data["vectors"]
                vectors.update(zip(keys.tolist(), matrix, strict=True))
                self._seen.add(shard)
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
        import io

        buffer = io.BytesIO()
        np.savez(buffer, keys=np.asarray(list(keys), dtype=str), vectors=np.asarray(vectors))
        path = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        atomic_write_bytes(path, buffer.getvalue())
        self._seen.add(path)
        return path

    def compact(self, known: Mapping[str, np.ndarray] | None = None) -> None:
        """Merge all shards into one; a crash part-way leaves duplicates, never gaps.

        ``known`` is what ``load`` returned plus what was appended since, when the caller
        holds it: passing it saves reading every shard a second time.
        """
        if known is not None:
            # Shards another process wrote meanwhile hold vectors ``known`` lacks: keep them.
            shards = [shard for shard in self._shards() if shard in self._seen]
        else:
            shards = self._shards()
        if len(shards) < 2:
            return
        merged = known if known is not None else self.load()
        if merged:
            keys = list(merged)
            new = self._write_shard(keys, np.stack([merged[k] for k in keys]))
            shards = [s for s in shards if s != new]
        for shard in shards:
            shard.unlink(missing_ok=True)
