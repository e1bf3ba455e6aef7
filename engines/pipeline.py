"""The one indexing pipeline every engine runs; engines plug in only where vectors are stored.

    key each item -> skip the unreadable -> ask the store what it has -> compute the rest
    in batches with a progress bar -> write every FLUSH_EVERY vectors -> count

Writing as it goes is what makes a build resumable: a process killed mid-index leaves the
vectors written so far in the store (the vector cache, a Chroma collection), and the next
run computes only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tqdm import tqdm

from .base import SearchEngine, SkippedFile
from .gallery import GalleryItem
from .images import os_reason

#: How many new vectors are computed between two writes to the store: the most work a
#: crash mid-index can lose.
FLUSH_EVERY = 128


class VectorStore(Protocol):
    """Where an engine keeps the vectors the pipeline computes."""

    def stored_keys(self) -> Container[str]:
        """Keys whose vectors the store already holds."""
        ...

    def write(self, records: Sequence[tuple[str, GalleryItem]], vectors: np.ndarray) -> None:
        """Store one vector per record (key, item)."""
        ...

    def reserve(self, count: int) -> None:
        """At most ``count`` vectors will be written (a store may allocate for them at once)."""
        ...


@dataclass(frozen=True)
class IndexRun:
    """What a pipeline run leaves: the indexed records in gallery order, and how many were computed."""

    records: list[tuple[str, GalleryItem]]
    computed: int


def run_pipeline(
    engine: SearchEngine,
    gallery: Sequence[GalleryItem],
    *,
    key: Callable[[GalleryItem], str],
    compute: Callable[[list[GalleryItem]], Iterator[np.ndarray | Exception]],
    store: VectorStore,
    skipped: list[SkippedFile],
    progress: bool,
    write_limit: int | None = None,
) -> IndexRun:
    """Bring ``store`` up to date with ``gallery``.

    ``key`` names an item's vector (it may raise ``OSError`` for a file that cannot be
    read); items sharing a key are computed once. ``compute`` yields one vector, or the
    error that prevented it, per item in order. Unreadable items are recorded in
    ``skipped`` with their reason. ``write_limit`` caps how many vectors go to the store
    in one write (a database's batch limit).
    """
    records: list[tuple[str, GalleryItem]] = []
    for item in gallery:
        try:
            records.append((key(item), item))
        except OSError as exc:
            engine._skip(skipped, item.source, os_reason(exc))
    stored = store.stored_keys()
    todo: dict[str, GalleryItem] = {}
    for record_key, item in records:
        if record_key not in stored:
            todo.setdefault(record_key, item)
    store.reserve(len(todo))
    flush_every = min(FLUSH_EVERY, write_limit or FLUSH_EVERY)
    failed: dict[str, str] = {}
    pending: list[tuple[str, GalleryItem]] = []
    vectors: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            store.write(list(pending), np.stack(vectors))
        pending.clear()
        vectors.clear()

    computed = 0
    bar = tqdm(total=len(todo), desc=f"Indexing ({engine.name})", unit="img", disable=not progress)
    try:
        for (record_key, item), outcome in zip(todo.items(), compute(list(todo.values())), strict=True):
            bar.update(1)
            if isinstance(outcome, Exception):
                failed[record_key] = getattr(outcome, "reason", None) or str(outcome)
                continue
            pending.append((record_key, item))
            vectors.append(outcome)
            computed += 1
            if len(pending) >= flush_every:
                flush()
        flush()
    finally:
        bar.close()
    indexed = []
    for record_key, item in records:
        if record_key in failed:
            engine._skip(skipped, item.source, failed[record_key])
        else:
            indexed.append((record_key, item))
    return IndexRun(indexed, computed)
