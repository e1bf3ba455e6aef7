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

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .base import (
    BackendUnavailableError,
    EngineError,
    Query,
    SearchEngine,
    SearchResult,
    SkippedFile,
)
from .cache import default_cache_dir
from .embedder import DEFAULT_MODEL, ClipEmbedder, shared_embedder
from .gallery import GalleryItem
from .images import os_reason

log = logging.getLogger(__name__)

SPACES = ("cosine", "l2", "ip")
#: HNSW graph settings of every collection (benchmarks/chroma.py measures the trade-off).
#: Chroma's defaults (16 neighbours, ef 100) lose too many true neighbours on hard data:
#: recall@10 0.71 at 10k random vectors, against 0.98 with these at about 2 ms a query.
#: The slower inserts cost little beside computing the CLIP embeddings themselves.
HNSW_SETTINGS = {"max_neighbors": 32, "ef_construction": 200, "ef_search": 400}


def hnsw_configuration(space: str, **overrides: int) -> dict[str, Any]:
    """The collection configuration the engine creates for ``space``."""
    return {"hnsw": {"space": space, **HNSW_SETTINGS, **overrides}}
#: Bump when what a stored record means changes; older collections are then rebuilt.
COLLECTION_FORMAT = 1
#: New vectors are written at least this often, so a crash loses little work.
FLUSH_EVERY = 128


def default_chroma_path() -> Path:
    """Where embedded mode keeps its database unless told otherwise."""
    return default_cache_dir() / "chroma"


class ChromaEngine(SearchEngine):
    """CLIP embeddings in a Chroma collection (HNSW), embedded or on a Chroma server."""

    name = "chroma"
    metrics = SPACES
    default_metric = "cosine"
    accepts_text = True

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        revision: str | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        embedder: ClipEmbedder | None = None,
        path: str | Path | None = None,
        host: str | None = None,
        port: int = 8000,
        collection: str = "gallery",
    ) -> None:
        super().__init__()
        if path is not None and host is not None:
            raise ValueError("Expected either path (embedded Chroma) or host (a Chroma server), not both")
        self.embedder = embedder or shared_embedder(
            model, revision=revision, device=device, batch_size=batch_size, workers=workers
        )
        self.host = host
        self.port = int(port)
        self.path = None if host is not None else Path(path) if path is not None else default_chroma_path()
        self.collection_prefix = _slug(collection)
        self._client: Any = None
        self._client_lock = threading.Lock()
        # (collections by space, count, labels): swapped whole, read without locks.
        self._state: tuple[dict[str, Any], int, list[str]] | None = None
        self._attached = False
        self.last_computed = 0

    # -- connection ------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """Where the database is, for messages."""
        return f"Chroma server at {self.host}:{self.port}" if self.host else f"embedded Chroma at {self.path}"

    @contextlib.contextmanager
    def _backend(self, doing: str) -> Iterator[None]:
        """Turn the client's many failure types into one typed error naming the database."""
        try:
            yield
        except EngineError:
            raise
        except Exception as exc:
            hint = " Is the server running (chroma run --path DIR --port N)?" if self.host else ""
            raise BackendUnavailableError(
                f"Could not {doing} ({self.where}): {type(exc).__name__}: {exc}.{hint}"
            ) from exc

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        with self._client_lock:
            if self._client is not None:
                return self._client
            with self._backend("connect"):
                import chromadb
                from chromadb.config import Settings

                settings = Settings(anonymized_telemetry=False)
                if self.host:
                    client = chromadb.HttpClient(host=self.host, port=self.port, settings=settings)
                    client.heartbeat()
                else:
                    assert self.path is not None
                    self.path.mkdir(parents=True, exist_ok=True)
                    _lock_embedded(self.path)
                    client = chromadb.PersistentClient(path=str(self.path), settings=settings)
            self._client = client
            return client

    def _collection_name(self, space: str) -> str:
        identity = json.dumps(self.embedder.identity(), sort_keys=True, default=str)
        model_hash = hashlib.sha256(identity.encode()).hexdigest()[:12]
        return f"{self.collection_prefix}-{model_hash}-{space}"

    def _expected_metadata(self, space: str) -> dict[str, Any]:
        identity = self.embedder.identity()
        return {
            "model": str(identity.get("model")),
            "model_identity": json.dumps(identity, sort_keys=True, default=str),
            "dim": self.embedder.dim,
            "space": space,
            "format": COLLECTION_FORMAT,
        }

    def _open(self, space: str, *, create: bool) -> Any | None:
        """The collection for ``space``; one built by another model or format is rebuilt."""
        client = self._connect()
        name = self._collection_name(space)
        expected = self._expected_metadata(space)
        with self._backend(f"open collection {name}"):
            existing = {c.name if hasattr(c, "name") else str(c) for c in client.list_collections()}
            if name in existing:
                collection = client.get_collection(name, embedding_function=None)
                found = collection.metadata or {}
                if all(found.get(k) == v for k, v in expected.items()):
                    return collection
                log.warning(
                    "collection %s was built by %s (dim %s, format %s); rebuilding it for %s",
                    name, found.get("model"), found.get("dim"), found.get("format"), expected["model"],
                )
                if not create:
                    return None
                client.delete_collection(name)
            if not create:
                return None
            return client.create_collection(
                name,
                configuration=hnsw_configuration(space),
                metadata={**expected, "complete": False},
                embedding_function=None,
            )

    def _attach(self) -> None:
        """Pick up a complete index left by an earlier process (persistence)."""
        if self._attached:
            return
        self._attached = True
        collections = {space: self._open(space, create=False) for space in SPACES}
        if any(c is None or not (c.metadata or {}).get("complete") for c in collections.values()):
            return
        with self._backend("read the collection"):
            metadatas = collections["cosine"].get(include=["metadatas"])["metadatas"] or []
        labels = sorted({str(m.get("label", "")) for m in metadatas})
        self._state = (collections, len(metadatas), labels)

    # -- contract ------------------------------------------------------------------------------
    def __len__(self) -> int:
        self._attach()
        return self._state[1] if self._state else 0

    @property
    def labels(self) -> list[str]:
        self._attach()
        return list(self._state[2]) if self._state else []

    def _index(self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: bool) -> int:
        self._attached = True  # this build decides what is current
        wanted: dict[str, GalleryItem] = {}
        for item in gallery:
            try:
                wanted[_record_id(item)] = item
            except OSError as exc:
                self._skip(skipped, item.source, os_reason(exc))
        collections = {space: self._open(space, create=True) for space in SPACES}
        primary = collections["cosine"]
        self._mark(collections, complete=False)
        stored = self._sync_primary(primary, wanted, skipped, progress=progress)
        for collection in collections.values():
            if collection is not primary:
                self._mirror(primary, collection, stored)
        self._mark(collections, complete=True)
        labels = sorted({wanted[i].label for i in stored})
        self._state = (collections, len(stored), labels)
        return len(stored)

    def _mark(self, collections: dict[str, Any], *, complete: bool) -> None:
        with self._backend("update collection metadata"):
            for space, collection in collections.items():
                collection.modify(metadata={**self._expected_metadata(space), "complete": complete})

    def _max_write_batch(self) -> int:
        with self._backend("ask the batch size"):
            return max(1, int(self._connect().get_max_batch_size()))

    def _existing_ids(self, collection: Any) -> set[str]:
        with self._backend("list stored records"):
            return set(collection.get(include=[])["ids"])

    def _sync_primary(
        self, primary: Any, wanted: dict[str, GalleryItem], skipped: list[SkippedFile], *, progress: bool
    ) -> set[str]:
        existing = self._existing_ids(primary)
        limit = self._max_write_batch()
        stale = sorted(existing - set(wanted))
        with self._backend("delete removed records"):
            for start in range(0, len(stale), limit):
                primary.delete(ids=stale[start : start + limit])
        todo = [record for record in wanted if record not in existing]
        pending_ids: list[str] = []
        pending_vectors: list[np.ndarray] = []
        stored = set(wanted) & existing
        flush_at = min(limit, FLUSH_EVERY)

        def flush() -> None:
            for start in range(0, len(pending_ids), limit):
                ids = pending_ids[start : start + limit]
                with self._backend("store vectors"):
                    primary.upsert(
                        ids=ids,
                        embeddings=np.stack(pending_vectors[start : start + limit]),
                        metadatas=[_metadata(wanted[i]) for i in ids],
                    )
                stored.update(ids)
            pending_ids.clear()
            pending_vectors.clear()

        bar = tqdm(total=len(todo), desc="Indexing (chroma)", unit="img", disable=not progress)
        try:
            for record, outcome in zip(todo, self.embedder.embed_items([wanted[r] for r in todo]), strict=True):
                bar.update(1)
                if isinstance(outcome, Exception):
                    self._skip(skipped, wanted[record].source, getattr(outcome, "reason", str(outcome)))
                    continue
                pending_ids.append(record)
                pending_vectors.append(outcome)
                if len(pending_ids) >= flush_at:
                    flush()
            flush()
        finally:
            bar.close()
        self.last_computed = len(stored) - len(set(wanted) & existing)
        return stored

    def _mirror(self, primary: Any, collection: Any, stored: set[str]) -> None:
        """Make ``collection`` hold exactly the primary's records (vectors copied, not recomputed)."""
        existing = self._existing_ids(collection)
        limit = self._max_write_batch()
        stale = sorted(existing - stored)
        missing = sorted(stored - existing)
        with self._backend("mirror the collection"):
            for start in range(0, len(stale), limit):
                collection.delete(ids=stale[start : start + limit])
            for start in range(0, len(missing), limit):
                chunk = primary.get(ids=missing[start : start + limit], include=["embeddings", "metadatas"])
                collection.upsert(ids=chunk["ids"], embeddings=chunk["embeddings"], metadatas=chunk["metadatas"])

    def _search(self, query: Query, k: int, metric: str, labels: frozenset[str] | None) -> list[SearchResult]:
        state = self._state
        if state is None:  # pragma: no cover - len() == 0 is refused before this
            return []
        collections, count, _ = state
        vector = self.embedder.embed_query(query)
        where = {"label": {"$in": sorted(labels)}} if labels is not None else None
        with self._backend("query the collection"):
            found = collections[metric].query(
                query_embeddings=[vector], n_results=min(k, count), where=where, include=["metadatas", "distances"]
            )
        results = []
        for rank, (metadata, distance) in enumerate(zip(found["metadatas"][0], found["distances"][0], strict=True), start=1):
            results.append(
                SearchResult(
                    rank=rank,
                    label=str(metadata.get("label", "")),
                    score=_score(metric, float(distance)),
                    path=metadata.get("path") or None,
                    index=int(metadata.get("position", -1)),
                )
            )
        return results


def _score(space: str, distance: float) -> float:
    """Chroma's distance as the user reads the metric (the CLIP engine's convention)."""
    if space == "l2":
        return float(np.sqrt(max(distance, 0.0)))  # Chroma reports the squared distance
    return 1.0 - distance  # cosine and ip distances are 1 - similarity


def _record_id(item: GalleryItem) -> str:
    """Stable per file and content: a changed file gets a new id, a moved one too."""
    where = hashlib.sha256(item.source.encode()).hexdigest()[:12]
    return f"{item.content_hash[:40]}-{where}"


def _metadata(item: GalleryItem) -> dict[str, Any]:
    return {"label": item.label, "path": item.path or "", "position": item.position}


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("._-")
    return (cleaned or "gallery")[:48].rjust(3, "x")


_EMBEDDED_LOCKS: dict[str, Any] = {}
_EMBEDDED_LOCKS_GUARD = threading.Lock()


def _lock_embedded(path: Path) -> Any:
    """Hold an exclusive lock on an embedded database folder for this process.

    Embedded Chroma is single-process: two processes writing one folder corrupt it. A
    second process is refused with a pointer to server mode; engines in this process share
    the lock, held until the process ends.
    """
    key = str(path.resolve())
    with _EMBEDDED_LOCKS_GUARD:
        if key in _EMBEDDED_LOCKS:
            return _EMBEDDED_LOCKS[key]
        handle = open(os.path.join(key, ".image-search.lock"), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise BackendUnavailableError(
                f"The embedded Chroma database at {key} is in use by {owner}. Embedded Chroma "
                "serves one process only: to share an index between processes, run a Chroma "
                f"server (chroma run --path {key} --port 8000) and start the app with "
                "--chroma-host 127.0.0.1 --chroma-port 8000."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        _EMBEDDED_LOCKS[key] = handle
        return handle
