"""The Chroma engine: the CLIP engine's vectors, stored and searched in a Chroma database.

Embedded mode (the default) keeps the database in a folder (``path``); server mode talks
to a Chroma server (``host``/``port``, started with ``chroma run --path DIR --port N``),
the way to share one index between several app processes or machines.

Vectors always come from the shared CLIP embedder: Chroma never embeds on its own, so
the vectors here are exactly the ones the CLIP engine ranks. There is one collection per
(gallery, model, space); ids are stable per file and content, so re-indexing adds new
files, re-embeds changed ones, deletes removed ones and leaves the rest alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis.faces import PeopleNames, photos_of
from .analysis.words import TextStore, records_showing
from .base import FeatureVector, SearchResult, SkippedFile
from .clip import ThroughClipCache, UsesEmbedder, resolve_embedder
from .deployment import Deployment
from .errors import EmptyIndexError
from .filters import Filter
from .galleries.items import GalleryItem
from .galleries.photo_info import PhotoInfoCache
from .model.embedder import ClipEmbedder, EmbedderConfig
from .pipeline import run_pipeline
from .results import GalleryVectors, Progress
from .storage.chroma_db import (
    ChromaDatabase,
    CollectionMissingError,
    GalleryCollections,
    collection_prefix,
    path_of,
    record_id,
    record_metadata,
)
from .storage.chroma_query import distance_score, nearest_records
from .storage.file_facts import ContentHashes
from .workspace import Workspace

log = logging.getLogger(__name__)

SPACES = ("cosine", "l2", "ip")


@dataclass(frozen=True)
class _State:
    """What a search reads, swapped whole when an index build finishes."""

    collections: dict[str, Any]  # by space
    count: int
    labels: list[str]
    #: The items this process indexed, by record id: images without a file (a dataset's)
    #: are only here. An index picked up from an earlier process rebuilds items from metadata.
    items: dict[str, GalleryItem] = field(default_factory=dict)


class _CollectionStore:
    """The pipeline's store for Chroma: the primary collection, written with upserts."""

    def __init__(self, engine: ChromaEngine, collection: Any, existing: set[str], photos: PhotoInfoCache) -> None:
        self.engine, self.collection, self.existing, self.photos = engine, collection, existing, photos

    def stored_keys(self) -> Container[str]:
        return self.existing

    def reserve(self, count: int) -> None:
        pass  # the database allocates for itself

    def write(self, records: Sequence[tuple[str, GalleryItem]], vectors: np.ndarray, *, carried: bool = False) -> None:
        # Carried vectors (checked by the pipeline) go in too: the collection is this gallery's own.
        with self.engine.db.guard("store vectors"):
            self.collection.upsert(
                ids=[key for key, _ in records], embeddings=vectors,
                metadatas=[record_metadata(item, self.photos.of(item)) for _, item in records],
            )


class ChromaEngine(UsesEmbedder):
    """CLIP embeddings in a Chroma collection (HNSW), embedded or on a Chroma server."""

    name = "chroma"
    title = "CLIP + Chroma"
    metrics = SPACES
    default_metric = "cosine"
    duplicate_thresholds = {"cosine": 0.95, "ip": 0.95, "l2": 0.32}

    def __init__(
        self,
        *,
        embedder: ClipEmbedder | EmbedderConfig | None = None,
        path: str | Path | None = None,
        host: str | None = None,
        port: int = 8000,
        collection: str | None = None,
        gallery: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        """Collections are named by ``collection`` where given; else a gallery listed from
        one folder by that folder's real path, so the app, ``python -m engines.index`` and
        Python code share one index per folder; else by ``gallery`` (the app's name for a
        dataset gallery), else ``"gallery"``."""
        super().__init__()
        if path is not None and host is not None:
            raise ValueError("Expected either path (embedded Chroma) or host (a Chroma server), not both")
        self.embedder = resolve_embedder(embedder)
        folder = None if host is not None else Path(path) if path is not None else Workspace.at(None).chroma
        self.db = ChromaDatabase(path=folder, host=host, port=port)
        self._collection = collection
        self.collection_prefix = collection_prefix(collection or gallery or "gallery")
        #: Where the content hashes of gallery files are remembered between runs.
        self.cache_dir = Workspace.at(cache_dir).root
        self._state: _State | None = None
        self._attached = False

    @classmethod
    def deployment_options(cls, deployment: Deployment) -> dict[str, Any]:
        where: dict[str, Any] = (
            {"host": deployment.chroma_host, "port": deployment.chroma_port} if deployment.chroma_host
            else {"path": deployment.chroma_path or Workspace.at(deployment.cache_dir).chroma}
        )
        return {
            **super().deployment_options(deployment), **where,
            "gallery": deployment.gallery, "cache_dir": deployment.cache_dir,
        }

    def _collections(self) -> GalleryCollections:
        """The bookkeeping of this gallery's collections for the embedder's model."""
        return GalleryCollections(self.db, self.collection_prefix, self.embedder.identity(), self.embedder.dim)

    def _attach(self) -> None:
        """Pick up a complete index left by an earlier process (persistence).

        Marked attached only once the database answered: a first search while a server is
        down fails, and the next one tries again.
        """
        if self._attached:
            return
        collections = {space: self._collections().open(space, create=False) for space in SPACES}
        primary = collections["cosine"]
        if primary is not None and all(c is not None and (c.metadata or {}).get("complete") for c in collections.values()):
            with self.db.guard("read the collection"):
                metadatas = primary.get(include=["metadatas"])["metadatas"] or []
            labels = sorted({str(m.get("label", "")) for m in metadatas})
            self._state = _State(collections, len(metadatas), labels)
        self._attached = True

    # -- contract ------------------------------------------------------------------------------
    def __len__(self) -> int:
        self._attach()
        return self._state.count if self._state else 0

    @property
    def labels(self) -> list[str]:
        self._attach()
        return list(self._state.labels) if self._state else []

    def _index(self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: Progress) -> int:
        roots = {item.root for item in gallery}
        if self._collection is None and len(roots) == 1 and None not in roots:  # listed from one folder: named by it
            named = collection_prefix(str(next(iter(roots))))
            if named != self.collection_prefix:
                self.collection_prefix, self._state, self._attached = named, None, False
        collections: dict[str, Any] = {}
        existing_by_space: dict[str, set[str]] = {}
        for space in SPACES:
            collections[space], existing_by_space[space] = self._collections().readable(space)
        self._attached = True  # this build decides what is current
        primary = collections["cosine"]
        self._collections().mark(collections, complete=False)
        limit = self.db.max_write_batch()
        existing = existing_by_space["cosine"]
        hashes = ContentHashes(Workspace(self.cache_dir).file_facts)
        photos = PhotoInfoCache(Workspace(self.cache_dir).file_facts)
        shared = ThroughClipCache(self.embedder, self.cache_dir, hashes)
        try:
            run = run_pipeline(
                self, gallery, key=lambda item: record_id(item, hashes.of(item)), compute=shared.compute,
                store=_CollectionStore(self, primary, existing, photos), skipped=skipped, progress=progress,
                write_limit=limit, identity=self.vector_identity(), dim=self.embedder.dim, normalised=True,
            )
        finally:
            hashes.save()
            photos.save()
        stored = {key for key, _ in run.records}
        self._collections().delete(primary, sorted(existing - stored), limit)
        for space, collection in collections.items():
            if collection is not primary:
                self._collections().mirror(primary, collection, existing_by_space[space], stored, limit)
        self._collections().mark(collections, complete=True)
        self.last_computed = run.computed - shared.reused
        self._state = _State(collections, len(stored), sorted({item.label for _, item in run.records}),
                             dict(run.records))
        return len(stored)

    def _stored_vector(self, result: SearchResult) -> FeatureVector:
        state = self._state
        found: list[Any] = []
        if state is not None and result.record:
            with self.db.guard("read a stored vector"):
                found = list(state.collections["cosine"].get(ids=[result.record], include=["embeddings"])["embeddings"])
        if not len(found):
            return super()._stored_vector(result)
        return np.asarray(found[0], dtype=np.float32)

    def vectors(self, *, content_hashes: bool = False) -> GalleryVectors:
        state = self._state
        if state is None:
            raise EmptyIndexError(self.name)
        ids: list[str] = []
        metadatas: list[Any] = []
        chunks: list[np.ndarray] = []
        limit = self.db.max_write_batch()
        with self.db.guard("read the stored vectors"):
            for offset in range(0, state.count, limit):
                found = state.collections["cosine"].get(
                    include=["embeddings", "metadatas"], limit=limit, offset=offset
                )
                ids += found["ids"]
                metadatas += found["metadatas"]
                chunks.append(np.asarray(found["embeddings"], dtype=np.float32))
        items = tuple(
            state.items.get(record)
            or GalleryItem(str(m.get("label", "")), path_of(m), position=int(m.get("position", -1)))
            for record, m in zip(ids, metadatas, strict=True)
        )
        # A record id starts with the file's content hash (see _record_id): known without reading.
        hashes = tuple(record.split("-", 1)[0] for record in ids)
        return GalleryVectors(np.concatenate(chunks), items, tuple(ids), hashes, self.vector_identity())

    def _tagged(self, names: Sequence[str], records: list[str] | None) -> list[str]:
        """Those of ``records`` (all tagged records for ``None``) that carry every tag of ``names``."""
        records = records if records is not None else list(self._tag_mask_records())
        return [r for r, on in zip(records, self._tag_mask(names, records), strict=True) if on]

    def _cut(self, chosen: Filter | None, collection: Any) -> Callable[[list[str] | None], list[str]] | None:
        if chosen is None or not (chosen.tags or chosen.text or chosen.people):
            return None
        tags, text, people = chosen.tags, chosen.text, chosen.people

        def cut(records: list[str] | None) -> list[str]:
            if tags:
                records = self._tagged(tags, records)
            # A record id starts with its photo's content hash (40 digits): the words and faces stores' keys.
            records = records if records is not None else list(collection.get(include=[])["ids"])
            workspace = Workspace(self.cache_dir)
            if text:
                records = records_showing(text, records, TextStore(workspace.text))
            if people:
                roots = "|".join(sorted({i.root for i in (self._state.items.values() if self._state else ()) if i.root}))
                wanted = {key[:40] for key in photos_of(people, PeopleNames(workspace.people, roots))}
                records = [record for record in records if record.split("-")[0] in wanted]
            return records

        return cut

    def _rank(self, vector: FeatureVector, k: int, metric: str, chosen: Filter | None) -> list[SearchResult]:
        state = self._state
        if state is None:  # pragma: no cover - len() == 0 is refused before this
            return []
        where = chosen.where() if chosen is not None else None
        try:
            with self.db.guard("query the collection"):
                # Tags and words are no metadata: they cut the ids the where clause kept.
                cut = self._cut(chosen, state.collections[metric])
                found = nearest_records(state.collections[metric], np.asarray(vector, dtype=np.float32), k, metric,
                                        where, state.count, cut)
        except CollectionMissingError as exc:
            # The collection went away under us (a server restarted empty): forget the
            # index, so that len() is 0 and the next build makes it again.
            self._state, self._attached = None, False
            raise EmptyIndexError(
                self.name,
                f"The {self.db.location} has no index for this gallery any more (it may have restarted "
                "empty); build the index again",
                lost=True,
            ) from exc
        results = []
        rows = zip(found["ids"][0], found["metadatas"][0], found["distances"][0], strict=True)
        for rank, (record, metadata, distance) in enumerate(rows, start=1):
            results.append(
                SearchResult(
                    rank=rank,
                    label=str(metadata.get("label", "")),
                    score=distance_score(metric, float(distance)),
                    path=path_of(metadata),
                    position=int(metadata.get("position", -1)),
                    record=record,
                )
            )
        return results
