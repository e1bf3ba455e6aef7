"""Approximate nearest neighbours for large galleries of unit vectors: inverted lists.

A full scan of 1,000,000 x 512 float32 vectors takes ~71 ms on 2 cores (memory-bound), and
numpy has no faster int8 or float16 product. So past ``IVF_MIN_ROWS`` rows a cosine search
scans a few percent of the gallery instead: the vectors are grouped by spherical k-means into
``nlist`` lists around centroids (about ``2 * sqrt(n)``); a query compares itself with the
centroids, then, in float32, with the rows of the ``nprobe`` nearest lists only, and the best
of those are scored exactly as a full scan scores them. This is the IVF-Flat index of FAISS
(and clip-retrieval's coarse stage) without compression.

The lists' vectors are a copy of the gallery's in list order, in one file, read with plain
reads per query (so they sit in the page cache, not in the process's memory); the centroids,
each slot's key and the list offsets are small arrays beside them. An index built for one
set of keys serves a later one: photos added since are scanned exactly (the *tail*), photos
removed are skipped, and ``stale`` says when either passes a tenth of the gallery and a
rebuild pays. Answers are approximate: ``benchmarks/million.py`` measures recall@10 against
the exact search, which stays one option away (``exact=True`` on the engines).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .kmeans import ASSIGN_ROWS, assign, train

log = logging.getLogger(__name__)

#: Below this many rows the exact search answers in under ~15 ms on 2 cores (benchmarks/million.py).
IVF_MIN_ROWS = 200_000
#: A filter keeping fewer rows than this is answered by an exact scan of those rows (a few ms).
IVF_MIN_FILTERED = 20_000
#: Share of the gallery added or removed since the build past which ``stale`` is true.
STALE_SHARE = 0.1
FORMAT = 1


def lists_for(rows: int) -> int:
    """The number of lists for ``rows`` vectors: a power of two near ``2 * sqrt(rows)``."""
    return int(2 ** round(np.log2(max(16.0, 2 * np.sqrt(rows)))))


def probes_for(nlist: int) -> int:
    """Lists scanned per query: 1/32 of them (about 3% of the rows), at least 8. Half as many
    kept recall@10 at 1.00 on CLIP-shaped vectors at 1M (benchmarks/million.py); the margin is
    for galleries whose neighbours stand out less."""
    return max(8, nlist // 32)


class InvertedIndex:
    """Inverted lists over unit vectors, kept in ``folder`` (see the module's notes)."""

    def __init__(self, folder: Path, centroids: np.ndarray, offsets: np.ndarray, keys: np.ndarray) -> None:
        self.folder = folder
        self.centroids = centroids
        self.offsets = offsets
        self.keys = keys  # each slot's key, in list order
        self.nprobe = probes_for(len(centroids))
        self.dim = centroids.shape[1]
        self.slot_rows = np.arange(len(keys), dtype=np.int64)  # slot -> row of the current matrix (-1: removed)
        self.tail = np.empty(0, dtype=np.int64)  # rows of the current matrix in no list
        self._handle = open(folder / "vectors.f32", "rb")  # noqa: SIM115 - held for the index's life
        # Closed with the index: an engine that indexes again drops its old one without closing it.
        weakref.finalize(self, self._handle.close)

    # -- building and opening ----------------------------------------------------------
    @classmethod
    def build(cls, matrix: np.ndarray, keys: Sequence[str], folder: Path, nlist: int | None = None,
              seed: int = 0) -> InvertedIndex:
        """Train, assign and write the lists of ``matrix`` (one row per key) to ``folder``."""
        nlist = max(1, min(nlist or lists_for(len(matrix)), len(matrix) // 2))  # a tiny gallery: fewer lists
        centroids = train(matrix, nlist, seed)
        owner = assign(matrix, centroids)
        order = np.argsort(owner, kind="stable")
        offsets = np.zeros(nlist + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(np.bincount(owner, minlength=nlist))
        scratch = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        with open(scratch / "vectors.f32", "wb") as out:
            for start in range(0, len(order), ASSIGN_ROWS):
                rows = np.sort(order[start : start + ASSIGN_ROWS])  # sorted reads of a memory-mapped matrix
                block = np.asarray(matrix[rows], dtype=np.float32)
                out.write(block[np.argsort(np.argsort(order[start : start + ASSIGN_ROWS]))].tobytes())
        # As bytes (UTF-8): a 64-character key takes 64 bytes, not numpy's 256 for text.
        slot_keys = np.asarray([key.encode() for key in keys], dtype=bytes)[order]
        np.save(scratch / "centroids.npy", centroids)
        np.save(scratch / "offsets.npy", offsets)
        np.save(scratch / "keys.npy", slot_keys)
        (scratch / "index.json").write_text(json.dumps({"format": FORMAT, "rows": len(order), "dim": matrix.shape[1],
                                                        "nlist": nlist}))
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(scratch, folder)
        except OSError:  # another process put its own build there first: use that one
            shutil.rmtree(scratch, ignore_errors=True)
            theirs = cls.open(folder, matrix.shape[1])
            if theirs is None:
                raise
            return theirs
        return cls(folder, centroids, offsets, slot_keys)

    @classmethod
    def open(cls, folder: Path, dim: int) -> InvertedIndex | None:
        """The index kept in ``folder``, or ``None`` (none, another format, or damaged: logged)."""
        try:
            meta = json.loads((folder / "index.json").read_text())
            if meta.get("format") != FORMAT or meta.get("dim") != dim:
                return None
            centroids = np.load(folder / "centroids.npy", allow_pickle=False)
            offsets = np.load(folder / "offsets.npy", allow_pickle=False)
            keys = np.load(folder / "keys.npy", allow_pickle=False)
            rows, nlist = int(meta["rows"]), int(meta["nlist"])
            size = (folder / "vectors.f32").stat().st_size
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("the approximate index in %s is damaged (%s); it is built again", folder, exc)
            return None
        shapes_fit = (centroids.shape == (nlist, dim) and centroids.dtype == np.float32 and offsets.shape == (nlist + 1,)
                      and keys.shape == (rows,) and keys.dtype.kind == "S" and size == rows * dim * 4 and offsets[0] == 0 and offsets[-1] == rows
                      and bool(np.all(np.diff(offsets) >= 0)))
        if not shapes_fit:
            log.warning("the approximate index in %s does not fit together; it is built again", folder)
            return None
        return cls(folder, centroids, offsets, keys)

    def attach(self, keys: Sequence[str]) -> None:
        """Serve the matrix whose rows are ``keys``: slots of keys gone are skipped, rows not
        in any list are the tail (scanned exactly)."""
        row_of = {key: row for row, key in enumerate(keys)}
        self.slot_rows = np.fromiter((row_of.pop(key.decode(), -1) for key in self.keys.tolist()), dtype=np.int64,
                                     count=len(self.keys))
        self.tail = np.fromiter(sorted(row_of.values()), dtype=np.int64, count=len(row_of))

    @property
    def stale(self) -> bool:
        """Whether added or removed photos passed a tenth of the lists' rows: rebuild then."""
        removed = int(np.count_nonzero(self.slot_rows < 0))
        return max(removed, len(self.tail)) > STALE_SHARE * max(1, len(self.keys))

    # -- searching ---------------------------------------------------------------------
    def _list(self, number: int) -> np.ndarray:
        start, end = int(self.offsets[number]), int(self.offsets[number + 1])
        data = os.pread(self._handle.fileno(), (end - start) * self.dim * 4, start * self.dim * 4)
        return np.frombuffer(data, dtype=np.float32).reshape(end - start, self.dim)

    def candidates(self, query: np.ndarray, k: int, matrix: np.ndarray, allowed: np.ndarray | None = None,
                   nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``matrix`` (the current gallery) likely among the ``k`` nearest to the unit
        ``query``, and their vectors: the best ``k`` by dot product over the probed lists and
        the tail, rows outside ``allowed`` (a mask over rows) left out. More lists are probed
        while fewer than ``k`` pass. The vectors come from the lists' own copy, so a search
        touches no page of the memory-mapped matrix beyond the tail's."""
        probes = nprobe or self.nprobe
        if allowed is not None:  # a filter keeping a share of the rows: more lists the fewer it keeps
            share = max(1e-6, float(np.count_nonzero(allowed)) / max(1, len(allowed)))
            probes = int(np.ceil(probes * min(8.0, 1.0 / share) ** 0.25))
        probes = min(len(self.centroids), probes)
        ranked = np.argsort(-(self.centroids @ query))
        rows_found: list[np.ndarray] = []
        dots_found: list[np.ndarray] = []
        vectors_found: list[np.ndarray] = []

        def keep_best(rows: np.ndarray, vectors: np.ndarray) -> None:
            dots = vectors @ query
            if len(rows) > k:  # only a list's best k can be among the best k
                best = np.argpartition(-dots, k - 1)[:k]
                rows, vectors, dots = rows[best], vectors[best], dots[best]
            rows_found.append(rows)
            vectors_found.append(vectors)
            dots_found.append(dots)

        if len(self.tail):
            tail = self.tail if allowed is None else self.tail[allowed[self.tail]]
            if len(tail):
                keep_best(tail, np.asarray(matrix[tail], dtype=np.float32))
        done = 0
        while True:
            for number in np.sort(ranked[done:probes]).tolist():
                start, end = int(self.offsets[number]), int(self.offsets[number + 1])
                if end == start:
                    continue
                rows = self.slot_rows[start:end]
                keep = rows >= 0 if allowed is None else (rows >= 0) & allowed[np.maximum(rows, 0)]
                if keep.any():
                    keep_best(rows[keep], self._list(number)[keep])
            done = probes
            found = sum(len(rows) for rows in rows_found)
            if found >= k or probes >= len(self.centroids):
                break
            probes = min(len(self.centroids), probes * 2)
        if not rows_found:
            return np.empty(0, dtype=np.int64), np.empty((0, self.dim), dtype=np.float32)
        rows, dots, vectors = np.concatenate(rows_found), np.concatenate(dots_found), np.concatenate(vectors_found)
        best = np.argpartition(-dots, k - 1)[:k] if len(rows) > k else np.arange(len(rows))
        order = best[np.argsort(rows[best])]  # by row: ties keep gallery order
        return rows[order], vectors[order]

    def _grams(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each list of two rows or more: its slots' current rows (-1: removed) and the dot
        products of its vectors with one another (the diagonal set to -inf)."""
        for number in range(len(self.centroids)):
            start, end = int(self.offsets[number]), int(self.offsets[number + 1])
            if end - start >= 2:
                vectors = self._list(number)
                dots = vectors @ vectors.T
                np.fill_diagonal(dots, -np.inf)
                yield self.slot_rows[start:end], dots

    @staticmethod
    def _pairs(found: list[np.ndarray]) -> np.ndarray:
        """Row pairs (``a < b``), unique, of photos still in the gallery."""
        if not found:
            return np.empty((0, 2), dtype=np.int64)
        pairs = np.concatenate(found)
        return np.unique(np.sort(pairs[(pairs >= 0).all(axis=1)], axis=1), axis=0).astype(np.int64)

    def near_pairs(self, threshold: float) -> np.ndarray:
        """Pairs of rows in one list whose dot product is at least ``threshold``: near-duplicate
        candidates in one pass over the lists (a copy is almost always in its original's list;
        one across a list boundary is missed)."""
        found = []
        for rows, dots in self._grams():
            a, b = np.nonzero(np.triu(dots >= threshold, 1))
            found.append(np.stack([rows[a], rows[b]], axis=1))
        return self._pairs(found)

    def neighbour_pairs(self, k: int) -> np.ndarray:
        """Each row's ``k`` nearest rows within its own list, as pairs: the duplicates run's
        "nearest few whatever their distance", without an N x N pass."""
        found = []
        for rows, dots in self._grams():
            take = min(k, len(rows) - 1)
            nearest = np.argpartition(-dots, take - 1, axis=1)[:, :take]
            found.append(np.stack([np.repeat(rows, take), rows[nearest.reshape(-1)]], axis=1))
        return self._pairs(found)

    def close(self) -> None:
        self._handle.close()


def lists_of(folder: Path, matrix: np.ndarray, keys: Sequence[str]) -> InvertedIndex:
    """The inverted lists kept in ``folder`` for the gallery ``matrix`` (one row per key),
    attached to its keys; built (again) where there are none, they are damaged, or photos
    added or removed since passed a tenth of the gallery."""
    found = InvertedIndex.open(folder, matrix.shape[1])
    if found is not None:
        found.attach(keys)
        if not found.stale:
            return found
        found.close()
        log.info("rebuilding the approximate index in %s: the gallery changed since it was built", folder)
    InvertedIndex.build(matrix, keys, folder).close()
    built = InvertedIndex.open(folder, matrix.shape[1])
    if built is None:  # pragma: no cover - just written
        raise OSError(f"the approximate index written to {folder} cannot be read back")
    built.attach(keys)
    return built


def keys_digest(keys: Sequence[str]) -> str:
    """A short name for a set of keys, for the folder of an index built over them."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
