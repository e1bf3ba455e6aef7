"""Engines that hold their gallery as one in-memory matrix: pixel and CLIP.

They index through the shared pipeline into the on-disk vector cache, then swap in one
snapshot (matrix, items, labels) that searches read without locks. Subclasses only say
how an item is keyed and how images become vectors.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis.faces import PeopleNames, photos_of
from .analysis.words import TextStore, shown_by
from .base import FeatureVector, SearchResult, SkippedFile
from .deployment import Deployment
from .errors import EmptyIndexError
from .featured import FeaturedEngine
from .filters import Filter
from .galleries.items import GalleryItem, hash_or_none
from .galleries.photo_info import PhotoTable, table_of
from .ivf import IVF_MIN_ROWS, lists_of
from .pipeline import run_pipeline
from .results import GalleryVectors, Progress, VectorIdentity
from .storage.cache import VectorCache
from .storage.file_facts import ContentHashes
from .vector_index import Blocks, VectorIndex
from .workspace import Workspace


@dataclass(frozen=True)
class _Snapshot:
    """Everything a search reads, replaced as a whole when an index build finishes."""

    vectors: VectorIndex
    items: tuple[GalleryItem, ...]
    keys: tuple[str, ...]  # each row's cache key: the record a result names
    labels: np.ndarray  # one class name per row, for filtering
    classes: tuple[str, ...]  # the distinct names, sorted
    #: Content hashes of ``items``, once a duplicates run computed them: kept on the snapshot
    #: itself, so they can never be read for another gallery's rows.
    hashes: list[tuple[str | None, ...]] = field(default_factory=list, compare=False)
    #: The photos' details (dates, cameras, locations), once a filter asked for them.
    photos: list[PhotoTable] = field(default_factory=list, compare=False)

    @functools.cached_property
    def rows_by_key(self) -> dict[str, int]:
        return {key: row for row, key in enumerate(self.keys)}


class _CachedVectors:
    """The pipeline's store for in-memory engines: what the cache holds, plus what is written."""

    def __init__(self, cache: VectorCache | None, dim: int) -> None:
        self.cache = cache
        self.vectors: dict[str, np.ndarray] = cache.load(dim) if cache is not None else {}
        #: Keys of vectors that came with a dataset: never written to the shared cache.
        self.carried: set[str] = set()
        #: New vectors, in the order written, in one matrix allocated once (``reserve``):
        #: batches are copied in and freed, so computing N vectors holds one N-row matrix.
        self.fresh: np.ndarray | None = None
        self.fresh_keys: list[str] = []
        self._capacity = 0

    def stored_keys(self) -> Container[str]:
        return self.vectors

    def reserve(self, count: int) -> None:
        self._capacity = count

    def write(self, records: Sequence[tuple[str, GalleryItem]], vectors: np.ndarray, *, carried: bool = False) -> None:
        keys = [key for key, _ in records]
        if self.fresh is None:
            self.fresh = np.empty((max(self._capacity, len(keys)), vectors.shape[1]), dtype=np.float32)
        start = len(self.fresh_keys)
        if start + len(keys) > self.fresh.shape[0]:  # more than reserved (not expected): grow
            extra = np.empty((max(len(self.fresh), len(keys)), self.fresh.shape[1]), dtype=np.float32)
            self.fresh = np.concatenate([self.fresh, extra])
        self.fresh[start : start + len(keys)] = vectors
        self.fresh_keys += keys
        self.vectors.update(zip(keys, self.fresh[start : start + len(keys)], strict=True))
        if carried:
            self.carried.update(keys)
        elif self.cache is not None:
            self.cache.append(keys, vectors)


def _gather(vectors: dict[str, np.ndarray], keys: list[str]) -> np.ndarray | None:
    """The rows of ``keys`` as one matrix, each taken out of ``vectors`` as it is copied.

    Taking them out lets the batches the pipeline wrote be freed while the matrix fills,
    so building it costs about one matrix of memory, not two. A key listed twice (two
    files with the same content) gets the row of its first place.
    """
    if not keys:
        return None
    first = vectors[keys[0]]
    matrix = np.empty((len(keys), first.shape[0]), dtype=np.float32)
    placed: dict[str, int] = {}
    for row, key in enumerate(keys):
        if key in placed:
            matrix[row] = matrix[placed[key]]
            continue
        matrix[row] = vectors.pop(key)
        placed[key] = row
    return matrix


class VectorEngine(FeaturedEngine):
    """A :class:`SearchEngine` over a float32 matrix of per-image vectors."""

    #: Whether ``_item_key`` is the file's SHA-256 (then duplicates read no file to hash it).
    _keys_are_content_hashes: bool = False

    def __init__(self, *, cache: bool | str = True, cache_dir: str | Path | None = None, exact: bool = False) -> None:
        super().__init__()
        #: Scan every row even past ``IVF_MIN_ROWS`` (unit vectors are otherwise searched by inverted lists).
        self.exact = bool(exact)
        if cache not in {True, False, "on", "off"} or isinstance(cache, int) and not isinstance(cache, bool):
            raise ValueError(f"Expected cache to be True or False ('on' or 'off'), got {cache!r}")
        self.cache_enabled = cache in {True, "on"}
        self.cache_dir = Workspace.at(cache_dir).root
        self._snapshot: _Snapshot | None = None

    @classmethod
    def deployment_options(cls, deployment: Deployment) -> dict[str, Any]:
        return {**super().deployment_options(deployment), "cache_dir": deployment.cache_dir}

    def local_features_dir(self) -> Path | None:
        return self.cache_dir if self.cache_enabled else None

    # -- what subclasses provide ---------------------------------------------------------
    @abc.abstractmethod
    def _cache_namespace(self) -> dict[str, object]:
        """Everything that changes what a vector means (settings, model identity)."""

    @abc.abstractmethod
    def _item_key(self, item: GalleryItem) -> str:
        """The cache key of ``item``; may raise ``OSError`` for an unreadable file."""

    @abc.abstractmethod
    def _compute(self, items: list[GalleryItem]) -> Iterator[np.ndarray | Exception]:
        """One vector (or the error that prevented it) per item, in order."""

    @abc.abstractmethod
    def _dim(self) -> int:
        """How many numbers each vector has (stored vectors of another length are refused)."""

    # -- the shared flow -------------------------------------------------------------------
    def _index(self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: Progress) -> int:
        cache = VectorCache(Workspace(self.cache_dir).vectors(self.name), self._cache_namespace()) if self.cache_enabled else None
        store = _CachedVectors(cache, self._dim())
        run = run_pipeline(
            self, gallery, key=self._item_key, compute=self._compute, store=store, skipped=skipped, progress=progress,
            identity=self.vector_identity(), dim=self._dim(), normalised=self.normalised,
        )
        self.last_computed = run.computed
        keys = [key for key, _ in run.records]
        items = tuple(item for _, item in run.records)
        stats: dict[str, np.ndarray] | None = None
        if cache is not None and run.computed == 0 and cache.whole is not None and cache.whole[0] == keys:
            # An unchanged gallery: the cached matrix (memory-mapped, no copy) and the
            # per-row terms stored with it, so nothing is read through.
            matrix: np.ndarray | None = cache.whole[1]
            stats = cache.whole_extras
            stored_as_is = True
        elif store.fresh is not None and store.fresh_keys == keys and len(store.vectors) == len(keys):
            matrix = store.fresh[: len(keys)]  # a new gallery, all computed in order: no copy either
            stored_as_is = not store.carried
        else:
            matrix = _gather(store.vectors, keys)
            stored_as_is = False
            if store.carried:  # the cache holds only what was computed: merge its own shards
                if cache is not None:
                    cache.compact()
            elif cache is not None:
                # Merged in gallery order, so that the next unchanged run takes the matrix as it is;
                # vectors of files not in this gallery (another gallery's) follow them.
                extra = list(store.vectors)  # _gather took this gallery's out
                if extra:
                    rest = _gather(store.vectors, extra)
                    cache.compact(keys + extra, rest if matrix is None else np.concatenate([matrix, rest]))
                elif matrix is not None:
                    stored_as_is = True
        if matrix is not None:
            index = VectorIndex(matrix, self._blocks(), stats)
            if cache is not None and stored_as_is:
                cache.compact(keys, index.matrix, extras=index.row_stats())
            if cache is not None and self.normalised and not self.exact and len(keys) >= IVF_MIN_ROWS:
                index.approximate = lists_of(cache.folder / "ivf", index.matrix, keys)
            labels = np.array([item.label for item in items], dtype=object)
            self._snapshot = _Snapshot(index, items, tuple(keys), labels, tuple(sorted(set(labels))))
        else:
            self._snapshot = None
        return len(items)

    def _blocks(self) -> Blocks | None:
        """How this engine's vectors are laid out in blocks whose sums bound the metrics
        (``vector_index.Blocks``), letting a search skip rows exactly; ``None``: scan them all."""
        return None

    def _rank(self, vector: FeatureVector, k: int, metric: str, chosen: Filter | None) -> list[SearchResult]:
        snapshot = self._snapshot
        if snapshot is None:  # pragma: no cover - len() == 0 is refused before this
            return []
        rows = None
        if chosen is not None:
            tagged = self._tag_mask(chosen.tags, snapshot.keys) if chosen.tags else None
            for wanted, mask in ((chosen.text, self._words_mask), (chosen.people, self._people_mask)):
                if wanted:
                    kept = mask(wanted, snapshot)
                    tagged = kept if tagged is None else tagged & kept
            rows = np.flatnonzero(chosen.keeps(snapshot.labels, self.photo_table() if chosen.reads_photos else None,
                                               tagged))
            if not len(rows):
                return []
        order, scores = snapshot.vectors.nearest(vector, k, metric, rows)
        results = []
        for rank, (found, score) in enumerate(zip(order, scores, strict=True), start=1):
            row = int(found if rows is None else rows[found])
            item = snapshot.items[row]
            results.append(SearchResult(rank, item.label, float(score), item.path, item.position, snapshot.keys[row]))
        return results

    def _row_hashes(self, snapshot: _Snapshot) -> list[str | None]:
        """Each row's content hash (the key itself where the engine keys rows by content)."""
        if self._keys_are_content_hashes:
            return list(snapshot.keys)
        known = ContentHashes(Workspace(self.cache_dir).file_facts)
        hashes = [hash_or_none(item, known) for item in snapshot.items]
        known.save()
        return hashes

    def _words_mask(self, text: Sequence[str], snapshot: _Snapshot) -> np.ndarray:
        """Which rows show the words ``text`` (read by the words engine into the same workspace)."""
        return shown_by(text, self._row_hashes(snapshot), TextStore(Workspace(self.cache_dir).text))

    def _people_mask(self, people: Sequence[str], snapshot: _Snapshot) -> np.ndarray:
        """Which rows show one of ``people`` (named with the faces engine, for this gallery)."""
        roots = "|".join(sorted({item.root for item in snapshot.items if item.root}))
        wanted = photos_of(people, PeopleNames(Workspace(self.cache_dir).people, roots))
        return np.array([key in wanted for key in self._row_hashes(snapshot)], dtype=bool)

    def photo_table(self) -> PhotoTable:
        """The indexed photos' dates, cameras and locations (headers read on first use, then
        remembered in the cache folder), one per row."""
        snapshot = self._snapshot
        if snapshot is None:
            raise EmptyIndexError(self.name)
        if not snapshot.photos:
            snapshot.photos[:] = [table_of(snapshot.items, self.cache_dir if self.cache_enabled else None)]
        return snapshot.photos[0]

    def _stored_vector(self, result: SearchResult) -> FeatureVector:
        snapshot = self._snapshot
        rows = snapshot.rows_by_key if snapshot is not None else {}
        if result.record not in rows:
            return super()._stored_vector(result)
        return snapshot.vectors.matrix[rows[result.record]]  # type: ignore[union-attr]

    def vector_identity(self) -> VectorIdentity:
        return VectorIdentity.of(self.name, self._cache_namespace())

    def vectors(self, *, content_hashes: bool = False) -> GalleryVectors:
        snapshot = self._snapshot
        if snapshot is None:
            raise EmptyIndexError(self.name)
        hashes: tuple[str | None, ...] | None = snapshot.keys if self._keys_are_content_hashes else None
        if content_hashes and hashes is None:
            hashes = self._content_hashes(snapshot)
        return GalleryVectors(snapshot.vectors.matrix, snapshot.items, snapshot.keys, hashes, self.vector_identity(),
                              snapshot.vectors.approximate)

    def _content_hashes(self, snapshot: _Snapshot) -> tuple[str | None, ...]:
        """SHA-256 of each item's file, once per snapshot (kept on it, so that moving the
        duplicates threshold stats nothing), remembered by path, size and time in the cache
        folder (only new or changed files are read); ``None`` where unreadable."""
        if not snapshot.hashes:
            known = ContentHashes(Workspace(self.cache_dir).file_facts) if self.cache_enabled else None
            try:
                snapshot.hashes[:] = [tuple(hash_or_none(item, known) for item in snapshot.items)]
            finally:
                if known is not None:
                    known.save()
        return snapshot.hashes[0]

    @property
    def labels(self) -> list[str]:
        snapshot = self._snapshot
        return list(snapshot.classes) if snapshot is not None else []

    def __len__(self) -> int:
        snapshot = self._snapshot
        return len(snapshot.items) if snapshot is not None else 0
