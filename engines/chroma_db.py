"""Talking to a Chroma database: embedded (one folder, one process) or a server, with typed errors.

The Chroma engine and anything else that writes the engine's collections (an index
builder, say) open the database through :class:`ChromaDatabase`, so they fail with the
same messages and create collections with the same graph settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import BackendUnavailableError, EngineError

#: HNSW graph settings of every collection (benchmarks/chroma.py measures the trade-off).
#: Chroma's defaults (16 neighbours, ef 100) lose too many true neighbours on hard data:
#: recall@10 0.71 at 10k random vectors, against 0.98 with these at about 2 ms a query.
#: The slower inserts cost little beside computing the CLIP embeddings themselves.
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
    try:
        from chromadb import errors
    except ImportError:  # pragma: no cover - chromadb is a dependency
        return BackendUnavailableError
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
