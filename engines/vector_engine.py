"""Engines that hold their gallery as one in-memory matrix: pixel and CLIP.

The index flow (cache look-up, computing what is missing, skipping unreadable files,
swapping the finished index in) and the search flow (label filter, metric, ranking) are
the same for both; subclasses only say how an image (or a query) becomes a vector.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .base import Query, SearchEngine, SearchResult, SkippedFile
from .cache import VectorCache, default_cache_dir
from .gallery import GalleryItem
from .images import os_reason
from .metrics import VectorIndex, top_k

#: How many new vectors are computed between two cache shard writes: the most work a
#: crash mid-index can lose.
FLUSH_EVERY = 128


@dataclass(frozen=True)
class _Snapshot:
    """Everything a search reads, replaced as a whole when an index build finishes."""

    vectors: VectorIndex
    items: tuple[GalleryItem, ...]
    labels: np.ndarray  # one class name per row, for filtering
    classes: tuple[str, ...]  # the distinct names, sorted


class VectorEngine(SearchEngine):
    """A :class:`SearchEngine` over a float32 matrix of per-image vectors."""

    def __init__(self, *, cache: str = "on", cache_dir: str | Path | None = None) -> None:
        super().__init__()
        if cache not in {"on", "off"}:
            raise ValueError(f"Expected cache to be 'on' or 'off', got {cache!r}")
        self.cache_enabled = cache == "on"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._snapshot: _Snapshot | None = None
        #: How many vectors the last ``index`` call had to compute (the rest came from cache).
        self.last_computed = 0

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
    def _query_vector(self, query: Query) -> np.ndarray:
        """The vector of a query; raises a typed error for a query it cannot take."""

    # -- the shared flow -------------------------------------------------------------------
    def _index(self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: bool) -> int:
        cache = VectorCache(self.cache_dir / self.name, self._cache_namespace()) if self.cache_enabled else None
        known = cache.load() if cache is not None else {}
        keys: list[str | None] = []
        for item in gallery:
            try:
                keys.append(self._item_key(item))
            except OSError as exc:
                keys.append(None)
                self._skip(skipped, item.source, os_reason(exc))
        todo = [i for i, key in enumerate(keys) if key is not None and key not in known]
        computed: dict[int, np.ndarray] = {}
        pending: list[int] = []

        def flush() -> None:
            if cache is not None and pending:
                cache.append([keys[i] for i in pending], np.stack([computed[i] for i in pending]))  # type: ignore[misc]
            pending.clear()

        bar = tqdm(total=len(todo), desc=f"Indexing ({self.name})", unit="img", disable=not progress)
        try:
            for i, outcome in zip(todo, self._compute([gallery[i] for i in todo]), strict=True):
                bar.update(1)
                if isinstance(outcome, Exception):
                    self._skip(skipped, gallery[i].source, getattr(outcome, "reason", str(outcome)))
                    continue
                computed[i] = outcome
                pending.append(i)
                if len(pending) >= FLUSH_EVERY:
                    flush()
            flush()
        finally:
            bar.close()
        if cache is not None:
            cache.compact()
        self.last_computed = len(computed)

        rows, items = [], []
        for i, key in enumerate(keys):
            vector = computed.get(i) if key is None or key not in known else known[key]
            if vector is not None:
                rows.append(vector)
                items.append(gallery[i])
        if rows:
            self._snapshot = _Snapshot(
                VectorIndex(np.stack(rows)),
                tuple(items),
                np.array([item.label for item in items], dtype=object),
                tuple(sorted({item.label for item in items})),
            )
        else:
            self._snapshot = None
        return len(items)

    def _search(self, query: Query, k: int, metric: str, labels: frozenset[str] | None) -> list[SearchResult]:
        snapshot = self._snapshot
        if snapshot is None:  # pragma: no cover - len() == 0 is refused before this
            return []
        vector = self._query_vector(query)
        # The contract already refused a filter that matches no indexed class.
        rows = None if labels is None else np.flatnonzero(np.isin(snapshot.labels, list(labels)))
        scores = snapshot.vectors.scores(vector, metric, rows)
        order = top_k(scores, k, metric in self.higher_is_better)
        results = []
        for rank, position in enumerate(order, start=1):
            row = int(position if rows is None else rows[position])
            item = snapshot.items[row]
            results.append(
                SearchResult(rank=rank, label=item.label, score=float(scores[position]), path=item.path, index=item.position)
            )
        return results

    @property
    def labels(self) -> list[str]:
        snapshot = self._snapshot
        return list(snapshot.classes) if snapshot is not None else []

    def __len__(self) -> int:
        snapshot = self._snapshot
        return len(snapshot.items) if snapshot is not None else 0
