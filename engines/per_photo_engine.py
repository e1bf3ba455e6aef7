"""Engines that read something from each photo once (its words, its faces) and rank photos by it.

``index`` keys each photo by its content (``ContentHashes``, remembered by file identity), takes
what an earlier build read from the workspace's per-photo store, and reads only the rest, one
photo at a time, keeping each at once: a build that is stopped or killed resumes where it
stopped, and an unchanged gallery reads nothing. Subclasses say what they read (``_read``) and
what they make of the rows (``_swap``).
"""

from __future__ import annotations

import abc
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from PIL import Image

from .base import SearchEngine, SkippedFile
from .deployment import Deployment
from .errors import IndexCancelledError, UnreadableImageError
from .galleries.images import os_reason
from .galleries.items import GalleryItem
from .results import IndexProgress, Progress
from .storage.file_facts import ContentHashes
from .storage.per_photo import PerPhotoStore
from .workspace import Workspace

T = TypeVar("T")


class PerPhotoEngine(SearchEngine, Generic[T]):
    """A :class:`SearchEngine` whose index is what it read from each photo, one ``T`` a photo."""

    #: Words for the progress bar ("Reading the text in photos").
    reading: str = "Reading photos"
    #: Photos read at once (decoding and reading, in threads); an engine whose reader releases the
    #: GIL and takes one thread of its own sets more.
    workers: int = 1

    def __init__(self, cache_dir: str | Path | None, side: int, store: PerPhotoStore[T]) -> None:
        super().__init__()
        if side < 256:
            raise ValueError(f"Expected side of at least 256 pixels, got {side}")
        self.workspace = Workspace.at(cache_dir)
        self.side = int(side)
        self._store = store
        self._rows: list[tuple[GalleryItem, str, T]] = []

    @classmethod
    def deployment_options(cls, deployment: Deployment) -> dict[str, Any]:
        return {"cache_dir": deployment.cache_dir}

    def local_features_dir(self) -> Path | None:
        return self.workspace.root

    @abc.abstractmethod
    def _read(self, picture: Image.Image) -> T:
        """What the engine reads from one photo (decoded at most ``side`` pixels on its longest side)."""

    def _read_one(self, todo: tuple[GalleryItem, str]) -> T | UnreadableImageError:
        try:
            picture = todo[0].open(draft=(self.side // 2, self.side // 2))
            picture.thumbnail((self.side, self.side), Image.Resampling.BILINEAR)
            return self._read(picture)
        except UnreadableImageError as exc:
            return exc

    def _swap(self, rows: list[tuple[GalleryItem, str, T]]) -> None:
        """Make ``rows`` (in gallery order) the index searched."""
        self._rows = rows

    def _index(self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: Progress) -> int:
        hashes = ContentHashes(self.workspace.file_facts)
        rows: list[tuple[GalleryItem, str, T]] = []
        todo: list[tuple[GalleryItem, str]] = []
        for item in gallery:
            if item.refused is not None or item.listed_size == 0:
                self._skip(skipped, item.source, item.refused or "empty file")
                continue
            try:
                key = hashes.of(item)
            except OSError as exc:
                self._skip(skipped, item.source, os_reason(exc))
                continue
            except UnreadableImageError as exc:
                self._skip(skipped, item.source, exc.reason)
                continue
            found = self._store.get(key)
            if found is None:
                todo.append((item, key))
            else:
                rows.append((item, key, found))
        hashes.save()
        report = reporter(self.name, len(todo), progress, self.reading)
        order = {id(item): n for n, item in enumerate(gallery)}
        self.last_computed = 0
        workers = max(1, min(self.workers, len(todo) or 1))
        pool = ThreadPoolExecutor(workers)
        queued = iter(todo)
        pending: deque[tuple[GalleryItem, str, Future[T | UnreadableImageError]]] = deque()

        def fill() -> None:  # a few photos ahead of the one kept next, in gallery order
            while len(pending) < 2 * workers and (following := next(queued, None)) is not None:
                pending.append((*following, pool.submit(self._read_one, following)))

        def keep(item: GalleryItem, key: str, read: T | UnreadableImageError) -> None:
            if isinstance(read, UnreadableImageError):
                self._skip(skipped, item.source, read.reason)
                return
            self._store.put(key, read)  # kept at once: a stop or a kill loses no photo read
            self.last_computed += 1
            rows.append((item, key, read))

        fill()
        done = 0
        try:
            while pending:
                item, key, future = pending.popleft()
                read = future.result()
                fill()
                done += 1
                keep(item, key, read)
                report(done)
        except IndexCancelledError:
            for item, key, future in pending:  # photos being read when Stop came are finished and kept
                if not future.cancel():
                    keep(item, key, future.result())
            self._swap(sorted(rows, key=lambda row: order[id(row[0])]))  # what was read stays searchable
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._swap(sorted(rows, key=lambda row: order[id(row[0])]))
        return len(self._rows)

    @property
    def labels(self) -> list[str]:
        return sorted({item.label for item, _, _ in self._rows})

    def __len__(self) -> int:
        return len(self._rows)


def reporter(engine: str, total: int, progress: Progress, what: str) -> Callable[[int], None]:
    """Progress for a build that reads photos one by one: a bar on stderr, a callback, or nothing."""
    from tqdm import tqdm

    started = time.monotonic()
    bar = tqdm(total=total, desc=what, unit="photo", disable=progress is not True or not total)
    callback = progress if callable(progress) else None
    if callback is not None:
        callback(IndexProgress(engine, 0, total, 0.0))

    def report(done: int) -> None:
        bar.update(1)
        if callback is not None:
            callback(IndexProgress(engine, done, total, time.monotonic() - started))
        if done == total:
            bar.close()

    return report
