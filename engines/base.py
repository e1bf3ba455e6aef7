"""The one contract every engine implements, and how engines describe themselves.

The UI, the evaluation code and the tests only ever talk to :class:`SearchEngine`;
nothing outside ``engines/`` needs to know how an engine stores its vectors. Argument
checking lives here, once, so every engine refuses bad input with the same messages.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from .capabilities import Capabilities
from .deployment import Deployment
from .errors import EmptyIndexError, InvalidQueryError, UnknownMetricError
from .filters import Filter, with_labels
from .galleries.gallery import Items, as_gallery_items
from .galleries.items import GalleryItem
from .metrics import SIMILARITIES
from .query import Query, SearchQuery, Text, load_query_image
from .results import Progress, SearchResult, SkippedFile, passing_threshold, summarise_skipped

if TYPE_CHECKING:
    from .results import GalleryVectors, VectorIdentity

log = logging.getLogger(__name__)

#: One image's (or sentence's) vector in an engine's space.
FeatureVector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Option:
    """A choice an engine offers its users: the UI builds one control per option from this."""

    name: str
    label: str
    choices: tuple[str, ...]
    default: str
    help: str = ""
    #: The choices are the application's to list (the models found on its machine): then
    #: ``choices`` is empty, and an empty value means the application's own setting.
    listed_by_app: bool = False


class SearchEngine(Capabilities):
    """An image index that ranks its gallery against a query.

    Subclasses set the class attributes below and implement ``_index``, ``_rank``,
    ``_image_vector`` (and ``_text_vector`` where ``accepts_text``), ``labels`` and
    ``__len__``. What features ask of an engine beyond ranking (engines/capabilities.py)
    has defaults that say "not supported".
    """

    name: ClassVar[str]
    #: How people call this engine (the UI's word for it).
    title: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    default_metric: ClassVar[str]
    #: Choices a user makes for this engine (feature kind, ...); constructor keywords.
    options: ClassVar[tuple[Option, ...]] = ()
    #: Metrics where a larger score is the better match.
    higher_is_better: ClassVar[frozenset[str]] = SIMILARITIES
    accepts_text: ClassVar[bool] = False
    #: Whether the engine keeps data about people (faces): an application shares it only behind a login.
    personal: ClassVar[bool] = False
    #: Whether the engine's vectors are unit vectors (a combined query is normalised too).
    normalised: ClassVar[bool] = False
    #: The JPEG draft size gallery files are decoded at (``None``: full size); queries
    #: given as files are decoded the same way, so an image's distance to itself is 0.
    decode_draft: tuple[int, int] | None = None
    #: The near-duplicate threshold per metric, chosen from benchmarks/duplicates.py.
    duplicate_thresholds: ClassVar[Mapping[str, float]] = {}

    def __init__(self) -> None:
        self.skipped: list[SkippedFile] = []
        #: How many vectors the last ``index`` call had to compute (the rest were stored).
        self.last_computed = 0
        # One index build at a time; searches never take this lock, they read a
        # snapshot that the build swaps in whole when it is complete.
        self._index_lock = threading.Lock()

    @classmethod
    def deployment_options(cls, deployment: Deployment) -> dict[str, Any]:
        """The constructor keywords this engine takes from an application's shared settings."""
        return {}

    # -- public contract -------------------------------------------------------------
    def index(self, items: Items | str, *, progress: Progress = True) -> int:
        """Index ``items`` (a ``datasets`` split, image paths or a folder), replacing the previous index.

        Unreadable images are skipped and listed in ``self.skipped``. Returns how many
        images were indexed. ``progress``: a bar on stderr (``True``), none (``False``), or a
        callback handed an :class:`~engines.results.IndexProgress` at least every half second;
        raising ``IndexCancelledError`` from it stops the build, keeping what was computed.
        """
        gallery = as_gallery_items(items)
        with self._index_lock:
            skipped: list[SkippedFile] = []
            count = self._index(gallery, skipped, progress=progress)
            self.skipped = skipped
            if skipped:  # one line per build, not one per file: 50,000 broken files are one line
                log.warning("%s engine: %s", self.name, summarise_skipped(skipped, count))
            return count

    def search(
        self,
        query: SearchQuery | Query,
        k: int = 10,
        metric: str | None = None,
        labels: str | Sequence[str] | None = None,
        threshold: float | None = None,
        filter: Filter | None = None,  # noqa: A002 - the word users know (Chroma's where, immich's filters)
    ) -> list[SearchResult]:
        """Rank the gallery against ``query``; best first, at most ``k`` results.

        ``query`` is an image (PIL image, or a path as ``Path`` or ``str``), a sentence as
        :class:`~engines.Text`, or a combined :class:`~engines.Query` of examples; see
        :mod:`engines.query`. ``labels`` keeps only gallery images of those classes.
        ``threshold`` drops results worse than it in the metric's own direction: a distance
        above it (``l1``, ``l2``), a similarity below it (``cosine``, ``correlation``,
        ``ip``). ``filter`` (:class:`~engines.Filter`) keeps only images of some classes, taken
        between two dates, by some cameras, with or without a location; ``labels`` is its
        shorthand. ``k`` larger than the gallery returns the whole (filtered) gallery.
        """
        metric, filter = self._checked(k, metric, labels, threshold, filter)
        return self._ranked(self.query_vector(query), k, metric, threshold, filter)

    def search_vector(
        self, vector: FeatureVector, k: int = 10, metric: str | None = None, labels: str | Sequence[str] | None = None,
        threshold: float | None = None, filter: Filter | None = None,  # noqa: A002
    ) -> list[SearchResult]:
        """``search`` with a vector this engine made (``query_vector``): one query ranked
        under several metrics costs one embedding (the evaluation does this)."""
        metric, filter = self._checked(k, metric, labels, threshold, filter)
        return self._ranked(vector, k, metric, threshold, filter)

    def _checked(self, k: int, metric: str | None, labels: str | Sequence[str] | None, threshold: float | None,
                 filter: Filter | None) -> tuple[str, Filter | None]:  # noqa: A002
        """The metric and filter to search with, after every argument was checked (before any embedding)."""
        if threshold is not None:
            check_threshold(threshold)
        metric = self.check_metric(metric)
        if isinstance(k, bool) or not isinstance(k, int):
            raise InvalidQueryError(f"Expected k to be a positive integer, got {k!r}")
        if k < 1:
            raise InvalidQueryError(f"Expected k to be at least 1, got {k}")
        if len(self) == 0:
            raise EmptyIndexError(self.name)
        filter = with_labels(filter, labels)
        if filter is not None and filter.labels is not None and not set(filter.labels) & set(self.labels):
            raise InvalidQueryError(
                f"Expected labels among the indexed classes ({', '.join(self.labels)}), got {sorted(filter.labels)}"
            )
        return metric, filter

    def _ranked(self, vector: FeatureVector, k: int, metric: str, threshold: float | None,
                filter: Filter | None) -> list[SearchResult]:  # noqa: A002
        results = self._rank(vector, k, metric, filter)
        if threshold is None:
            return results
        return passing_threshold(results, threshold, metric in self.higher_is_better)

    # -- what the index holds, and the features built on it (functions over ``vectors()``) ----
    def vectors(self, *, content_hashes: bool = False) -> GalleryVectors:
        """The indexed gallery: one matrix, each row's item and record, the vectors' identity,
        and (``content_hashes``) each item's SHA-256, remembered where the engine can."""
        raise NotImplementedError(f"the {self.name} engine does not hand out its vectors")

    def vector_identity(self) -> VectorIdentity:
        """What makes this engine's vectors: equal identities mean interchangeable vectors."""
        raise NotImplementedError(f"the {self.name} engine has no vector identity")

    def duplicate_threshold(self, metric: str | None = None) -> float:
        """The default near-duplicate threshold for ``metric``."""
        return self.duplicate_thresholds[self.check_metric(metric)]

    def candidate_threshold(self, metric: str | None = None) -> float:
        """The loose threshold that finds candidates for verified duplicates: twice as far
        from a perfect match as ``duplicate_threshold`` (benchmarks/duplicates.py measures
        the candidates' recall of edited copies there)."""
        strict = self.duplicate_threshold(metric)
        return 1.0 - 2.0 * (1.0 - strict) if self.check_metric(metric) in SIMILARITIES else 2.0 * strict

    def export_details(self) -> dict[str, str]:
        """How the vectors were made, for an export's dataset card (model, backend, precision)."""
        return {}

    def query_vector(self, query: SearchQuery | Query | SearchResult) -> FeatureVector:
        """The vector ``query`` is ranked by, in this engine's space."""
        if isinstance(query, Query):
            return self._combine(query)
        if isinstance(query, SearchResult):
            return self._stored_vector(query)
        if isinstance(query, Text):
            if not self.accepts_text:
                raise InvalidQueryError(
                    f"The {self.name} engine searches by image only, got the text {query.text[:60]!r}: "
                    "searching by a sentence needs a CLIP engine"
                )
            return self._text_vector(query.text)
        return self._image_vector(load_query_image(query, self.decode_draft))

    def _combine(self, query: Query) -> FeatureVector:
        """Rocchio: the weighted mean of the positives minus ``negative_weight`` times the
        weighted mean of the negatives, each example normalised first where the engine's
        vectors are unit vectors, and the result too."""

        def mean(side: str) -> np.ndarray | None:
            pairs = query.weighted(side)
            if not pairs:
                return None
            total = np.zeros(0)
            for weight, item in pairs:
                vector = np.asarray(self.query_vector(item), dtype=np.float64)
                if self.normalised:
                    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
                total = weight * vector if total.size == 0 else total + weight * vector
            return total / sum(weight for weight, _ in pairs)

        combined = mean("positive")
        assert combined is not None  # Query refuses an empty positive side
        negative = mean("negative")
        if negative is not None:
            combined = combined - query.negative_weight * negative
        if self.normalised:
            combined = combined / max(float(np.linalg.norm(combined)), 1e-12)
        return combined.astype(np.float32)

    def _stored_vector(self, result: SearchResult) -> FeatureVector:
        """The vector this engine stored for ``result``; engines override this, and call it
        for a result their index does not hold."""
        raise InvalidQueryError(
            f"Expected a result of this {self.name} index, got one it does not hold "
            f"({result.path or result.label}): search again, then use the new results"
        )

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
    @staticmethod
    def _skip(skipped: list[SkippedFile], source: str, reason: str) -> None:
        """Record a gallery entry that will not be indexed (``index`` logs a summary)."""
        log.debug("skipped %s: %s", source, reason)
        skipped.append(SkippedFile(source, reason))

    @abc.abstractmethod
    def _index(self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: Progress) -> int: ...

    def _tag_mask(self, names: Sequence[str], records: Sequence[str]) -> np.ndarray:
        """For each of ``records``, whether it carries every tag of ``names`` (``Filter(tags=...)``)."""
        raise InvalidQueryError(f"Expected a CLIP-family engine for tags; the {self.name} engine has none")

    @abc.abstractmethod
    def _rank(self, vector: FeatureVector, k: int, metric: str, chosen: Filter | None) -> list[SearchResult]:
        """The ``k`` best rows that ``chosen`` keeps (all, for ``None``), best first."""

    @abc.abstractmethod
    def _image_vector(self, image: Image.Image) -> FeatureVector: ...

    def _text_vector(self, text: str) -> FeatureVector:
        raise NotImplementedError  # only reached where accepts_text is true


def check_threshold(threshold: object) -> None:
    """A clear error for a threshold that is not a finite number."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise InvalidQueryError(f"Expected threshold to be a finite number, got {threshold!r}")
