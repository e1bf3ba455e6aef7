"""The one contract every engine implements, its result record and its errors.

The UI, the evaluation code and the tests only ever talk to :class:`SearchEngine`;
nothing outside ``engines/`` needs to know how an engine stores its vectors.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Union

if TYPE_CHECKING:  # pragma: no cover - typing only
    from PIL import Image

    from .gallery import GalleryItem, Items

log = logging.getLogger(__name__)

#: What ``search`` accepts: a PIL image, the path of an image file, or (engines whose
#: ``accepts_text`` is true) a sentence.
Query = Union["Image.Image", str, Path]


class EngineError(Exception):
    """Base class of every error the engines raise on purpose."""


class EmptyIndexError(EngineError):
    """``search`` was called before anything was indexed."""


class InvalidQueryError(EngineError, ValueError):
    """The query, ``k`` or a filter is not what the engine can answer."""


class UnknownMetricError(InvalidQueryError):
    """The metric name is not one of ``engine.metrics``."""


class UnreadableImageError(EngineError):
    """An image file or upload cannot be decoded. ``source`` names it, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read image {source!r}: {reason}")
        self.source = source
        self.reason = reason


class ModelUnavailableError(EngineError):
    """A CLIP model could not be loaded (no network, bad id, broken directory)."""


class BackendUnavailableError(EngineError):
    """The vector database (a Chroma server, an embedded path) cannot be used."""


class GalleryError(EngineError):
    """A gallery folder or Hub dataset is missing, empty or not laid out as expected."""


@dataclass(frozen=True)
class SearchResult:
    """One ranked gallery image.

    ``score`` is the metric's own value as a user reads it: a distance for ``l1``/``l2``
    (lower is better), a similarity for ``cosine``/``correlation``/``ip`` (higher is
    better). ``path`` is ``None`` for images that came from a Hub dataset without files;
    ``index`` is then the position in the indexed split, for fetching the image.
    """

    rank: int
    label: str
    score: float
    path: str | None
    index: int


@dataclass(frozen=True)
class SkippedFile:
    """A gallery entry that was not indexed, and why (shown to the user)."""

    source: str
    reason: str


class SearchEngine(abc.ABC):
    """An image index that ranks its gallery against a query.

    Subclasses set ``name``, ``metrics`` and ``default_metric`` and implement ``_index``
    and ``_search``; argument checking lives here, once, so every engine refuses bad
    input with the same messages.
    """

    name: ClassVar[str]
    metrics: tuple[str, ...]
    default_metric: str
    #: Metrics where a larger score is the better match.
    higher_is_better: ClassVar[frozenset[str]] = frozenset({"cosine", "correlation", "ip"})
    accepts_text: ClassVar[bool] = False

    def __init__(self) -> None:
        self.skipped: list[SkippedFile] = []
        # One index build at a time; searches never take this lock, they read a
        # snapshot that the build swaps in whole when it is complete.
        self._index_lock = threading.Lock()

    # -- public contract -------------------------------------------------------------
    def index(self, items: Items, *, progress: bool = True) -> int:
        """Index ``items`` (a ``datasets`` split or image paths), replacing the previous index.

        Unreadable images are skipped and listed in ``self.skipped``. Returns how many
        images were indexed.
        """
        from .gallery import as_gallery_items

        gallery = as_gallery_items(items)
        with self._index_lock:
            skipped: list[SkippedFile] = []
            count = self._index(gallery, skipped, progress=progress)
            self.skipped = skipped
            return count

    def search(
        self,
        query: Query,
        k: int = 10,
        metric: str | None = None,
        labels: str | Sequence[str] | None = None,
    ) -> list[SearchResult]:
        """Rank the gallery against ``query``; best first, at most ``k`` results.

        ``labels`` keeps only gallery images of those classes. ``k`` larger than the
        gallery returns the whole (filtered) gallery.
        """
        metric = self.check_metric(metric)
        if isinstance(k, bool) or not isinstance(k, int):
            raise InvalidQueryError(f"Expected k to be a positive integer, got {k!r}")
        if k < 1:
            raise InvalidQueryError(f"Expected k to be at least 1, got {k}")
        if len(self) == 0:
            raise EmptyIndexError(
                f"The {self.name} engine has no images indexed yet: index a gallery first"
            )
        label_set = _label_set(labels)
        if label_set is not None and not label_set & set(self.labels):
            raise InvalidQueryError(
                f"Expected labels among the indexed classes ({', '.join(self.labels)}), got {sorted(label_set)}"
            )
        return self._search(query, k, metric, label_set)

    @staticmethod
    def _skip(skipped: list[SkippedFile], source: str, reason: str) -> None:
        """Record a gallery entry that will not be indexed, and log it once."""
        log.warning("skipped %s: %s", source, reason)
        skipped.append(SkippedFile(source, reason))

    def check_metric(self, metric: str | None) -> str:
        """The metric to use for ``metric`` (``None`` means the default), or a clear error."""
        if metric is None:
            return self.default_metric
        if metric not in self.metrics:
            raise UnknownMetricError(
                f"Expected metric to be one of {', '.join(self.metrics)}, got {metric!r}"
            )
        return metric

    @property
    @abc.abstractmethod
    def labels(self) -> list[str]:
        """Class names present in the index, sorted."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """How many images are indexed."""

    # -- for subclasses --------------------------------------------------------------
    @abc.abstractmethod
    def _index(
        self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: bool
    ) -> int: ...

    @abc.abstractmethod
    def _search(
        self, query: Query, k: int, metric: str, labels: frozenset[str] | None
    ) -> list[SearchResult]: ...


def _label_set(labels: str | Sequence[str] | None) -> frozenset[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = [labels]
    chosen = frozenset(str(label) for label in labels if str(label).strip())
    return chosen or None
