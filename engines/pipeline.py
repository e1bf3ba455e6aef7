"""The one indexing pipeline every engine runs; engines plug in only where vectors are stored.

    key each item -> skip the unreadable -> ask the store what it has -> compute the rest
    in batches with a progress bar -> write every FLUSH_EVERY vectors -> count

Writing as it goes is what makes a build resumable: a process killed mid-index leaves the
vectors written so far in the store (the vector cache, a Chroma collection), and the next
run computes only what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tqdm import tqdm

from .base import SearchEngine, SkippedFile
from .errors import GalleryError
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
    identity: str | None = None,
) -> IndexRun:
    """Bring ``store`` up to date with ``gallery``.

    ``key`` names an item's vector (it may raise ``OSError`` for a file that cannot be
    read); items sharing a key are computed once. ``compute`` yields one vector, or the
    error that prevented it, per item in order. Unreadable items are recorded in
    ``skipped`` with their reason. ``write_limit`` caps how many vectors go to the store
    in one write (a database's batch limit).

    Items that carry a stored vector (an exported index) are not computed: their vector is
    used when its ``identity`` is this engine's, and a different one is refused, naming both.
    """
    records: list[tuple[str, GalleryItem]] = []
    for item in gallery:
        try:
            records.append((key(item), item))
        except OSError as exc:
            engine._skip(skipped, item.source, os_reason(exc))
    stored = store.stored_keys()
    todo: dict[str, GalleryItem] = {}
    # Comprehensions, not one loop: an unchanged gallery of 100,000 files is only these passes.
    for record_key, item in [record for record in records if record[0] not in stored]:
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
        reused: set[int] = set()
        outcomes = _with_stored(list(todo.values()), compute, identity, reused)
        for (record_key, item), outcome in zip(todo.items(), outcomes, strict=True):
            bar.update(1)
            if isinstance(outcome, Exception):
                failed[record_key] = getattr(outcome, "reason", None) or str(outcome)
                continue
            pending.append((record_key, item))
            vectors.append(outcome)
            computed += id(item) not in reused
            if len(pending) >= flush_every:
                flush()
        flush()
    finally:
        bar.close()
    if not failed:
        return IndexRun(records, computed)
    indexed = []
    for record_key, item in records:
        if record_key in failed:
            engine._skip(skipped, item.source, failed[record_key])
        else:
            indexed.append((record_key, item))
    return IndexRun(indexed, computed)


def _with_stored(
    items: list[GalleryItem], compute: Callable[[list[GalleryItem]], Iterator[np.ndarray | Exception]],
    identity: str | None, reused: set[int],
) -> Iterator[np.ndarray | Exception]:
    """``compute``'s outcomes, with the items' stored vectors in place of computing them
    (their ``id`` is added to ``reused``)."""
    # Vectors of another kind of engine (CLIP vectors met by the pixel engine) are ignored:
    # the images came with them. The same kind with other settings is a mismatch.
    families: dict[str | None, object] = {}  # one parse per distinct identity, not per item

    def family(of: str | None) -> object:
        if of not in families:
            families[of] = _family(of)
        return families[of]

    carried = [item.stored if item.stored is not None and family(item.stored[0]) == family(identity) else None
               for item in items]
    if not any(carried):
        yield from compute(items)
        return
    for stored in carried:
        if stored is not None and stored[0] != identity:
            raise GalleryError(
                f"This index was exported with {_describe(stored[0])}; this engine makes vectors with "
                f"{_describe(identity)}. Index it with the same model and precision, or rebuild it from "
                "the images"
            )
    rest = iter(compute([item for item, stored in zip(items, carried, strict=True) if stored is None]))
    for item, stored in zip(items, carried, strict=True):
        if stored is None:
            yield next(rest)
        else:
            reused.add(id(item))
            yield np.asarray(stored[1], dtype=np.float32)


def _family(identity: str | None) -> object:
    try:
        return json.loads(identity or "").get("engine")
    except (ValueError, AttributeError):
        return None


def _describe(identity: str | None) -> str:
    """A vector identity as a person reads it: the model and its settings."""
    try:
        found = json.loads(identity or "")
    except ValueError:
        return repr(identity)
    inner = found.get("settings") or {}
    parts = [f"{key} {value}" for key, value in sorted(inner.items()) if key in {"model", "precision", "features", "size", "bins"}]
    return f"the {found.get('engine', 'unknown')} engine ({', '.join(parts) or identity})"
