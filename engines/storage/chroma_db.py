"""Talking to a Chroma database: embedded (one folder, one process) or a server, with typed errors.

Everything that writes the engine's collections opens the database through
:class:`ChromaDatabase`: the same messages, the same graph settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailableError, EngineError
from ..galleries.items import GalleryItem
from ..galleries.photo_info import PhotoInfo
from ..results import printable
from .hnsw_check import damaged

log = logging.getLogger(__name__)

#: Bump when what a stored record means changes; older collections are then rebuilt.
COLLECTION_FORMAT = 3  # 2: images decoded at the size the model needs; 3: photo details in the metadata

#: HNSW graph settings of every collection (benchmarks/chroma.py measures the trade-off).
#: Chroma's defaults (16 neighbours, ef 100) lose too many true neighbours on hard data:
#: recall@10 0.71 at 10k random vectors, against 0.98 with these at about 2 ms a query.
HNSW_SETTINGS = {"max_neighbors": 32, "ef_construction": 200, "ef_search": 400}


def hnsw_configuration(space: str, **overrides: int) -> dict[str, Any]:
    """The collection configuration the engine creates for ``space``."""
    return {"hnsw": {"space": space, **HNSW_SETTINGS, **overrides}}


class CollectionDamagedError(BackendUnavailableError):
    """The database answered, but a collection's files cannot be read (Chroma's InternalError)."""


class CollectionMissingError(BackendUnavailableError):
    """The database answered, but the collection is not there (a server restarted empty)."""


def _kind_of(exc: Exception) -> type[BackendUnavailableError]:
    """Which failure a Chroma client exception is, by Chroma's own error types."""
    from chromadb import errors

    if isinstance(exc, errors.NotFoundError):
        return CollectionMissingError
    if isinstance(exc, errors.InternalError):
        return CollectionDamagedError
    return BackendUnavailableError


class ChromaDatabase:
    """One Chroma database: a folder opened embedded (``path``), or a server (``host``, ``port``)."""

    def __init__(self, *, path: Path | None = None, host: str | None = None, port: int = 8000) -> None:
        if (path is None) == (host is None):
            raise ValueError("Expected either path (embedded Chroma) or host (a Chroma server)")
        self.path, self.host, self.port = path, host, int(port)
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def server(self) -> bool:
        return self.host is not None

    @property
    def location(self) -> str:
        """Which database this is, for messages."""
        return f"Chroma server at {self.host}:{self.port}" if self.host else f"embedded Chroma at {self.path}"

    @contextlib.contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Turn the client's many failure types into typed errors naming the database: a
        collection gone (``CollectionMissingError``), one whose files are damaged
        (``CollectionDamagedError``), anything else (``BackendUnavailableError``)."""
        try:
            yield
        except EngineError:
            raise
        except Exception as exc:
            kind = _kind_of(exc)
            hint = " Is the server running (chroma run --path DIR --port N)?" if self.host and kind is BackendUnavailableError else ""
            raise kind(
                f"Could not {doing} ({self.location}): {type(exc).__name__}: {exc}.{hint}",
                location=self.location, server=self.server,
            ) from exc

    def client(self) -> Any:
        """The connected client, connecting (and locking an embedded folder) on first use."""
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is not None:
                return self._client
            with self.guard("connect"):
                import chromadb
                from chromadb.config import Settings

                settings = Settings(anonymized_telemetry=False)
                if self.host:
                    client = chromadb.HttpClient(host=self.host, port=self.port, settings=settings)
                    client.heartbeat()
                else:
                    assert self.path is not None
                    self.path.mkdir(parents=True, exist_ok=True)
                    _lock_embedded(self.path, self.location)
                    client = chromadb.PersistentClient(path=str(self.path), settings=settings)
            self._client = client
            return client

    def max_write_batch(self) -> int:
        """The most records one write may carry."""
        with self.guard("ask the batch size"):
            return max(1, int(self.client().get_max_batch_size()))


_EMBEDDED_LOCKS: dict[str, Any] = {}
_EMBEDDED_LOCKS_GUARD = threading.Lock()


def _lock_embedded(path: Path, location: str) -> Any:
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
                f"server (chroma run --path {key} --port 8000) and connect to it with host and port.",
                location=location, server=False, in_use_by=owner,
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        _EMBEDDED_LOCKS[key] = handle
        return handle


class GalleryCollections:
    """The bookkeeping of one gallery's collections (one per space, for one model): their
    names, the metadata that says what built them, opening (rebuilding one built by another
    model or format), dropping a damaged one, marking a build complete, deleting and
    mirroring records."""

    def __init__(self, db: ChromaDatabase, prefix: str, identity: dict[str, object], dim: int) -> None:
        self.db, self.prefix, self.identity, self.dim = db, prefix, identity, dim

    def name(self, space: str) -> str:
        identity = json.dumps(self.identity, sort_keys=True, default=str)
        model_hash = hashlib.sha256(identity.encode()).hexdigest()[:12]
        return f"{self.prefix}-{model_hash}-{space}"

    def expected(self, space: str) -> dict[str, Any]:
        identity = self.identity
        return {
            "model": str(identity.get("model")),
            "model_identity": json.dumps(identity, sort_keys=True, default=str),
            "dim": self.dim,
            "space": space,
            "format": COLLECTION_FORMAT,
        }

    def open(self, space: str, *, create: bool) -> Any | None:
        """The collection for ``space``; one built by another model or format is rebuilt."""
        client = self.db.client()
        name = self.name(space)
        expected = self.expected(space)
        with self.db.guard(f"open collection {name}"):
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

    def mark(self, collections: dict[str, Any], *, complete: bool) -> None:
        with self.db.guard("update collection metadata"):
            for space, collection in collections.items():
                collection.modify(metadata={**self.expected(space), "complete": complete})

    def existing_ids(self, collection: Any) -> set[str]:
        with self.db.guard("list stored records"):
            return set(collection.get(include=[])["ids"])

    def delete(self, collection: Any, ids: list[str], limit: int) -> None:
        with self.db.guard("delete removed records"):
            for start in range(0, len(ids), limit):
                collection.delete(ids=ids[start : start + limit])

    def readable(self, space: str) -> tuple[Any, set[str]]:
        """The collection for ``space`` (created if missing) and its ids. A collection whose files are
        damaged would fail every search and build until deleted by hand: it is dropped and created
        empty, with one warning, and this build fills it again."""
        collection: Any = self.open(space, create=True)
        try:
            problem = damaged(self.db.path, self.name(space)) if self.db.path else None
            if problem:  # Chroma's native code would crash the process on these files (hnsw_check.py)
                raise CollectionDamagedError(problem, location=self.db.location, server=False) from ValueError(problem)
            existing = self.existing_ids(collection)
            if existing:  # reading ids skips the graph; one query reads it
                with self.db.guard("query the collection"):
                    probe = collection.get(ids=[next(iter(existing))], include=["embeddings"])["embeddings"]
                    collection.query(query_embeddings=probe, n_results=1, include=[])
            return collection, existing
        except CollectionDamagedError as exc:
            log.warning(
                "the %s collection of %s cannot be read (%s); dropping it and building it again",
                space, self.db.location, exc.__cause__,
            )
            with self.db.guard("drop a damaged collection"):
                self.db.client().delete_collection(self.name(space))
            return self.open(space, create=True), set()

    def mirror(self, primary: Any, collection: Any, existing: set[str], stored: set[str], limit: int) -> None:
        """Make ``collection`` hold exactly the primary's records (vectors copied, not recomputed)."""
        self.delete(collection, sorted(existing - stored), limit)
        missing = sorted(stored - existing)
        with self.db.guard("mirror the collection"):
            for start in range(0, len(missing), limit):
                chunk = primary.get(ids=missing[start : start + limit], include=["embeddings", "metadatas"])
                collection.upsert(ids=chunk["ids"], embeddings=chunk["embeddings"], metadatas=chunk["metadatas"])


def record_id(item: GalleryItem, content_hash: str) -> str:
    """Stable per file and content: a changed file gets a new id, a moved one too."""
    place = hashlib.sha256(item.source.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{content_hash[:40]}-{place}"


def record_metadata(item: GalleryItem, info: PhotoInfo | None = None) -> dict[str, Any]:
    """What a record carries besides its vector: class, file, place, and the photo's details
    (date taken, camera, location) for ``Filter``'s ``where`` clauses."""
    metadata: dict[str, Any] = {"label": printable(item.label), "path": printable(item.path or ""), "position": item.position}
    if item.path is not None and metadata["path"] != item.path:
        # A file name that is not UTF-8 (Chroma stores text): its bytes, to find the file again.
        metadata["path_bytes"] = os.fsencode(item.path).hex()
    if info is not None:
        if info.taken is not None:
            metadata.update(taken=float(info.taken), taken_from=info.taken_from)
        metadata.update(camera=printable(info.camera), camera_key=info.camera.casefold(),
                        has_location=info.location is not None)
        if info.location is not None:
            metadata.update(latitude=info.location[0], longitude=info.location[1])
    return metadata


def path_of(metadata: Mapping[str, Any]) -> str | None:
    """The file a record was made from (``None`` for an image without a file)."""
    if metadata.get("path_bytes"):
        return os.fsdecode(bytes.fromhex(str(metadata["path_bytes"])))
    return metadata.get("path") or None


def collection_prefix(name: str) -> str:
    """The start of a gallery's collection names: a folder by its real path (its last part,
    readable, and a hash of the whole path, so that long paths never collide), other names
    (a dataset id) the same way."""
    text = os.path.realpath(os.path.expanduser(name)) if os.path.isdir(os.path.expanduser(name)) else name
    cleaned = "".join(c if c.isascii() and c.isalnum() or c in "._-" else "-" for c in os.path.basename(text.rstrip("/")) or text)
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{(cleaned.strip('._-') or 'gallery')[:32]}-{digest}".rjust(3, "x")
