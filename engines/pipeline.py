"""The one indexing pipeline every engine runs; engines plug in only where vectors are stored.

    key each item -> skip the unreadable -> ask the store what it has -> compute the rest
    in batches with a progress bar -> write every FLUSH_EVERY vectors -> count

Writing as it goes is what makes a build resumable: a process killed mid-index leaves the
vectors written so far in the store (the vector cache, a Chroma collection), and the next
run computes only what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from .base import SearchEngine, SkippedFile
from .errors import GalleryError
from .galleries.images import os_reason
from .galleries.items import GalleryItem
from .galleries.shipped import shipped_vector
from .results import IndexProgress, Progress, VectorIdentity

#: How many new vectors are computed between two writes to the store: the most work a
#: crash mid-index can lose.
FLUSH_EVERY = 128
#: The most seconds between two calls of a progress callback while images are computed.
REPORT_EVERY_S = 0.5


class VectorStore(Protocol):
    """Where an engine keeps the vectors the pipeline computes."""

    def stored_keys(self) -> Container[str]:
        """Keys whose vectors the store already holds."""
        ...

    def write(self, records: Sequence[tuple[str, GalleryItem]], vectors: np.ndarray, *, carried: bool = False) -> None:
        """Store one vector per record (key, item). ``carried``: the vectors came with the
        items (an exported dataset), checked but not made here: they serve this index and
        are kept out of anything shared between galleries (the vector cache)."""
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
    progress: Progress,
    write_limit: int | None = None,
    identity: VectorIdentity | None = None,
    dim: int | None = None,
    normalised: bool = False,
) -> IndexRun:
    """Bring ``store`` up to date with ``gallery``.

    ``key`` names an item's vector (it may raise ``OSError`` for a file that cannot be
    read); items sharing a key are computed once. ``compute`` yields one vector, or the
    error that prevented it, per item in order. Unreadable items are recorded in
    ``skipped`` with their reason. ``write_limit`` caps how many vectors go to the store
    in one write (a database's batch limit).

    Items that carry a stored vector (an exported index) are not computed: their vector is
    used when its ``identity`` is this engine's, and a different one is refused, naming both.
    A stored vector is data from outside: one that is not finite, not ``dim`` long or (where
    the engine's vectors are unit vectors, ``normalised``) not of length 1 skips its item.
    """
    records: list[tuple[str, GalleryItem]] = []
    for item in gallery:
        if item.refused is not None:  # never touched: not even stated
            engine._skip(skipped, item.source, item.refused)
            continue
        if item.listed_size == 0:  # known empty from the listing: skipped without a read, every build
            engine._skip(skipped, item.source, "empty file")
            continue
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
    # Computed and carried vectors are written apart: only computed ones may be shared.
    pending: dict[bool, tuple[list[tuple[str, GalleryItem]], list[np.ndarray]]] = {False: ([], []), True: ([], [])}

    def flush(carried: bool) -> None:
        records_, vectors_ = pending[carried]
        if records_:
            store.write(list(records_), np.stack(vectors_), carried=carried)
        records_.clear()
        vectors_.clear()

    computed = 0
    # Nothing to compute: no bar at all (an empty one printed "0img" twice).
    bar = tqdm(total=len(todo), desc=f"Indexing ({engine.name})", unit="img", disable=progress is not True or not todo)
    report = _Reporter(engine.name, len(todo), progress if callable(progress) else None)
    try:
        reused: set[int] = set()
        outcomes = _with_stored(list(todo.values()), compute, identity, reused, dim, normalised)
        for done, ((record_key, item), outcome) in enumerate(zip(todo.items(), outcomes, strict=True), start=1):
            bar.update(1)
            if isinstance(outcome, Exception):
                failed[record_key] = getattr(outcome, "reason", None) or str(outcome)
            else:
                carried = id(item) in reused
                pending[carried][0].append((record_key, item))
                pending[carried][1].append(outcome)
                computed += not carried
                if len(pending[carried][0]) >= flush_every:
                    flush(carried)
            try:
                report(done)
            except BaseException:  # stopped: keep what was computed, then stop
                flush(False)
                flush(True)
                raise
        flush(False)
        flush(True)
        report(len(todo), final=True)
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


class _Reporter:
    """Calls a progress callback with the counts, at most every ``REPORT_EVERY_S`` (and at the end)."""

    def __init__(self, engine: str, total: int, callback: Callable[[IndexProgress], None] | None) -> None:
        self.engine, self.total, self.callback = engine, total, callback
        self.started = self.last = time.monotonic()
        if callback is not None:
            callback(IndexProgress(engine, 0, total, 0.0))

    def __call__(self, done: int, *, final: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if final or now - self.last >= REPORT_EVERY_S:
            self.last = now
            self.callback(IndexProgress(self.engine, done, self.total, now - self.started))


class StoredVectorError(ValueError):
    """A vector that came with a dataset cannot be used; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: How far from length 1 a stored unit vector may be (float32 rounding, int8 vectors).
UNIT_TOLERANCE = 1e-3


def stored_vector_problem(vector: object, dim: int | None, normalised: bool) -> str | None:
    """Why a vector from outside (an exported dataset) cannot be used, or ``None``."""
    try:
        array = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        return "its stored vector is not a list of numbers"
    if array.ndim != 1 or dim is not None and array.shape[0] != dim:
        return f"its stored vector has {array.size} numbers, expected {dim}"
    if not np.isfinite(array).all():
        return "its stored vector holds NaN or infinite numbers"
    if normalised:
        length = float(np.linalg.norm(array.astype(np.float64)))  # float32 overflows on 1e30s; float64 does not
        if abs(length - 1.0) > UNIT_TOLERANCE:
            return f"its stored vector has length {length:.4g}, expected a unit vector"
    return None


def _with_stored(
    items: list[GalleryItem], compute: Callable[[list[GalleryItem]], Iterator[np.ndarray | Exception]],
    identity: VectorIdentity | None, reused: set[int], dim: int | None = None, normalised: bool = False,
) -> Iterator[np.ndarray | Exception]:
    """``compute``'s outcomes, with the items' stored vectors in place of computing them
    (their ``id`` is added to ``reused``); a stored vector that fails the checks becomes
    a ``StoredVectorError`` outcome, so its item is skipped with the reason."""
    # Vectors of another kind of engine (CLIP vectors met by the pixel engine) are ignored:
    # the images came with them. The same kind with other settings is a mismatch.
    parsed: dict[object, VectorIdentity | None] = {}  # one parse per distinct identity, not per item

    def identity_of(text: object) -> VectorIdentity | None:
        key = text if isinstance(text, str) else repr(text)
        if key not in parsed:
            parsed[key] = VectorIdentity.from_json(text)
        return parsed[key]

    engine = identity.engine if identity is not None else None
    carried: list[tuple[VectorIdentity, Any] | None] = []
    for item in items:
        pair = item.stored
        shipped = pair is None and item.shipped is not None
        if shipped:
            pair = shipped_vector(item)
        found = identity_of(pair[0]) if pair is not None else None
        if pair is not None and found is not None and found.engine == engine \
                and (not shipped or found == identity):  # a shipped vector of another model: computed
            carried.append((found, pair[1]))
        else:
            carried.append(None)
    if not any(carried):
        yield from compute(items)
        return
    for stored in carried:
        if stored is not None and stored[0] != identity:
            raise GalleryError(
                f"This index was exported with {stored[0].describe()}; this engine makes vectors with "
                f"{identity.describe() if identity is not None else 'no identity'}. Index it with the same model and "
                "precision, or rebuild it from the images"
            )
    rest = iter(compute([item for item, stored in zip(items, carried, strict=True) if stored is None]))
    for item, stored in zip(items, carried, strict=True):
        if stored is None:
            yield next(rest)
            continue
        problem = stored_vector_problem(stored[1], dim, normalised)
        if problem is not None:
            yield StoredVectorError(problem)
            continue
        reused.add(id(item))
        yield np.asarray(stored[1], dtype=np.float32)
