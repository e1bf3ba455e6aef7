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
import mmap
import os
import struct
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass


log = logging.getLogger(__name__)

#: Bump when what a cached vector means changes (decoding, preprocessing, layout).
CACHE_FORMAT = 2  # 2: images decoded at the size the engine needs (JPEG DCT scaling, Image.reduce)


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
        #: those keys in that order can use the matrix as it is, without a copy. The matrix
        #: is memory-mapped from the file: an unchanged gallery of 100,000 pixel vectors
        #: (1.2 GB) starts without reading it through.
        self.whole: tuple[list[str], np.ndarray] | None = None
        #: Per-row arrays stored beside that matrix by ``compact(extras=...)`` (memory-mapped).
        self.whole_extras: dict[str, np.ndarray] = {}

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npz"))

    def load(self, dim: int | None = None) -> dict[str, np.ndarray]:
        """Every vector stored so far; unreadable shards are ignored (and logged), and a shard
        whose vectors are not ``dim`` long is removed with a warning: one bad shard must never
        make every later build of the gallery fail."""
        meta = self.folder / "namespace.json"
        if not meta.exists():
            return {}
        self._ensure_namespace()
        vectors: dict[str, np.ndarray] = {}
        shards = self._shards()
        self.whole, self.whole_extras = None, {}
        for shard in shards:
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys = data["keys"]
                    others = [name for name in data.files if name not in {"keys", "vectors"}]
                    matrix = _mapped(shard, "vectors") if len(shards) == 1 else None
                    if matrix is None:
                        matrix = data["vectors"]
                    if dim is not None and (matrix.ndim != 2 or matrix.shape[1] != dim or len(matrix) != len(keys)):
                        log.warning("removing cache shard %s: vectors of shape %s, expected %s numbers each",
                                    shard, matrix.shape, dim)
                        del matrix
                        shard.unlink(missing_ok=True)
                        continue
                    extras = {name: _mapped(shard, name) for name in others} if len(shards) == 1 else {}
                # Rows of a plain array over the mapping: a memmap row costs 8x more to make.
                vectors.update(zip(keys.tolist(), matrix.view(np.ndarray), strict=True))
                self._seen.add(shard)
                if len(shards) == 1:
                    self.whole = (keys.tolist(), matrix)
                    self.whole_extras = {name: array for name, array in extras.items() if array is not None}
            except FileNotFoundError:
                continue  # merged away by another process meanwhile
            except Exception as exc:  # noqa: BLE001 - a damaged shard must not break indexing
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

    def _write_shard(self, keys: Sequence[str], vectors: np.ndarray, extras: Mapping[str, np.ndarray] | None = None) -> Path:
        """Write one shard straight to a temporary file, renamed into place when whole.

        Streamed to the file rather than built in memory first: a shard of 100,000 pixel
        vectors is 1.2 GB, and a second copy of it would double the indexing's peak memory.
        """
        path = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        arrays = {"keys": np.asarray(list(keys), dtype=str), "vectors": np.asarray(vectors)}
        arrays.update((name, np.asarray(array)) for name, array in (extras or {}).items())
        atomic_write(path, lambda handle: _write_npz(handle, arrays))
        self._seen.add(path)
        return path

    def compact(
        self, keys: Sequence[str] | None = None, vectors: np.ndarray | None = None,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Merge all shards into one; a crash part-way leaves duplicates, never gaps.

        ``keys`` and ``vectors`` (one row per key) are everything this object read or wrote,
        when the caller holds them as one matrix: they are written as they are, in that
        order, instead of reading every shard a second time and stacking a copy. ``extras``
        (per-row arrays derived from them) are kept beside them and come back in
        ``whole_extras``; a single shard without them is rewritten to hold them.
        """
        if vectors is not None:
            # Shards another process wrote meanwhile hold vectors the caller lacks: keep them.
            shards = [shard for shard in self._shards() if shard in self._seen]
        else:
            shards = self._shards()
        missing_extras = bool(extras) and vectors is not None and bool(set(extras or {}) - set(self.whole_extras))
        if len(shards) < 2 and not (missing_extras and shards):
            return
        if vectors is None:
            merged = self.load()
            keys = list(merged)
            vectors = np.stack([merged[k] for k in keys]) if keys else None
            extras = None
        new = self._write_shard(keys or [], vectors, extras) if vectors is not None and len(vectors) else None
        for shard in shards:
            if shard != new:
                try:
                    shard.unlink(missing_ok=True)
                except OSError as exc:  # still mapped on a system that refuses that: next time
                    log.warning("could not remove merged cache shard %s: %s", shard, exc)


#: Where array data starts in a shard file, so that a memory-mapped array is aligned
#: (numpy runs unaligned float32 arrays through slow loops, not BLAS: 440 ms against 40).
ALIGN = 64


def _write_npz(handle: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez(handle, **arrays)``, except that each array's data starts at a multiple of
    ``ALIGN`` bytes in the file: the ``.npy`` header is padded (with spaces, as the format
    allows) to get there. ``np.load`` reads it as any ``.npz``; ``_mapped`` maps it."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, mode="w", force_zip64=True) as member:
                start = archive.fp.tell()  # type: ignore[union-attr]  # the local header is written
                header = repr(np.lib.format.header_data_from_array_1_0(array)).encode("latin1")
                prefix = len(np.lib.format.MAGIC_PREFIX) + 2 + 4  # magic, version 2.0, 4-byte length
                pad = -(start + prefix + len(header) + 1) % ALIGN
                header += b" " * pad + b"\n"
                member.write(np.lib.format.magic(2, 0) + struct.pack("<I", len(header)) + header)
                view = array.reshape(-1).view(np.uint8) if array.size else np.zeros(0, np.uint8)
                for offset in range(0, len(view), 1 << 26):  # 64 MB at a time: no copy of it all
                    member.write(view[offset : offset + (1 << 26)].data)


def _mapped(path: Path, name: str) -> np.ndarray | None:
    """Array ``name`` of the ``.npz`` at ``path`` memory-mapped (read-only), or ``None`` when
    it cannot be (compressed, or not aligned). ``_write_npz`` stores members uncompressed and
    aligned, so the ``.npy`` data lies as it is inside the file: map it at its offset."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
        if local[:4] != b"PK\x03\x04":
            return None
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
    if dtype.hasobject:
        return None
    if not shape or 0 in shape:
        return np.zeros(shape, dtype=dtype)
    if offset % ALIGN:
        return None  # written before shards were aligned (np.savez): read it whole, rewritten at the next merge
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    mapping = getattr(mapped, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_WILLNEED"):
        # Ask the kernel to read the file ahead now, so the first full scan after a
        # restart does not fault the pages in one by one.
        mapping.madvise(mmap.MADV_WILLNEED)
    return mapped
