"""The records engines hand back and take: a ranked result, a file that was not indexed, an
index's vectors and their identity, duplicate groups, a map, a build's progress."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .galleries.items import GalleryItem
    from .ivf import InvertedIndex


@dataclass(frozen=True)
class SearchResult:
    """One ranked gallery image.

    ``score`` is the metric's own value as a user reads it: a distance for ``l1``/``l2``
    (lower is better), a similarity for ``cosine``/``correlation``/``ip`` (higher is
    better). ``path`` is ``None`` for images that came from a Hub dataset without files;
    ``position`` is the image's place in the indexed split, for fetching it then.
    """

    rank: int
    label: str
    score: float
    path: str | None
    position: int
    #: The engine's own name for the image's stored vector, so that a later query can use
    #: this result as an example (``Query(positive=[result])``) without computing anything.
    record: str = ""
    #: For a sentence on a sigmoid-trained model (SigLIP, SigLIP 2): the model's own
    #: probability, 0 to 1, that the sentence describes the image; ``None`` otherwise.
    match: float | None = None


@dataclass(frozen=True)
class VectorIdentity:
    """What makes an engine's vectors: equal identities mean interchangeable vectors.

    ``settings`` (feature settings, model identity, precision) are kept as canonical JSON, so
    two identities compare by value; ``to_json`` is the text an export writes in every row.
    """

    engine: str
    settings_json: str

    @classmethod
    def of(cls, engine: str, settings: Mapping[str, object]) -> VectorIdentity:
        return cls(engine, json.dumps(dict(settings), sort_keys=True, default=str))

    @property
    def settings(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.settings_json)
        return found

    def to_json(self) -> str:
        return json.dumps({"engine": self.engine, "settings": self.settings}, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: object) -> VectorIdentity | None:
        """The identity written by ``to_json``, or ``None`` for anything else (data from outside)."""
        try:
            found = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        if not isinstance(found, dict) or not isinstance(found.get("engine"), str) or not isinstance(
            found.get("settings"), dict
        ):
            return None
        return cls.of(found["engine"], found["settings"])

    def describe(self) -> str:
        """As a person reads it: ``the clip engine (model /models/b32, precision int8)``."""
        shown = {"model", "precision", "features", "size", "bins"}
        parts = [f"{key} {value}" for key, value in sorted(self.settings.items()) if key in shown]
        return f"the {self.engine} engine ({', '.join(parts) or self.settings_json})"


@dataclass(frozen=True)
class GalleryVectors:
    """An engine's indexed gallery (``engine.vectors()``): one matrix, with the item and record
    of each row, what made the vectors, and each item's content hash where asked for."""

    matrix: np.ndarray
    items: tuple[GalleryItem, ...]
    records: tuple[str, ...]
    #: SHA-256 of each item's file (``None`` for one no longer readable); ``None`` when not asked for.
    hashes: tuple[str | None, ...] | None = None
    identity: VectorIdentity | None = None
    #: The engine's inverted lists over these (unit) rows, for a large gallery (``engines/ivf.py``).
    lists: InvertedIndex | None = None


@dataclass(frozen=True)
class DuplicateGroup:
    """A set of gallery images that are copies of one another.

    ``members`` are ordinary results: ``rank`` is the place in the group, ``score`` the
    metric from the first member (0 distance, or similarity 1, for exact copies), and
    ``record`` lets a member be used as a query. ``score`` of the group is its worst pair.
    """

    kind: str
    members: tuple[SearchResult, ...]
    score: float
    #: For a near group confirmed by local features: the fewest matching points one geometry
    #: explained over its pairs (``engines.analysis.verify``); ``None`` when the vectors alone decided.
    inliers: int | None = None
    #: ... and per member, the part of its picture (x0, y0, x1, y1 as shares of its width and
    #: height) that matched the first member (for the first: all the others matched of it),
    #: ``None`` where unknown (a member of an exact set in the group, not checked itself) ...
    regions: tuple[tuple[float, float, float, float] | None, ...] | None = None
    #: ... and how each member differs from the first, in words ("cropped", "rotated 8°"; "" for the first).
    edits: tuple[str, ...] | None = None

    @property
    def decided(self) -> str:
        """How the group was decided, in words."""
        if self.kind == "exact":
            return "the same content"
        if self.inliers is None:
            return "close vectors"
        seen = sorted({edit for edit in self.edits or () if edit})
        how = f" ({'; '.join(seen)})" if seen else ""
        return f"the same photo{how}: at least {self.inliers} matching points agree on one geometry"


@dataclass(frozen=True)
class GalleryMap:
    """Positions in [0, 1] x [0, 1], one per member; ``total`` is the size of the index."""

    points: np.ndarray
    members: tuple[SearchResult, ...]
    total: int
    method: str

    @property
    def sampled(self) -> bool:
        return len(self.members) < self.total


@dataclass(frozen=True)
class SkippedFile:
    """A gallery entry that was not indexed, and why (shown to the user)."""

    source: str
    reason: str


@dataclass(frozen=True)
class IndexProgress:
    """Where an index build stands: ``done`` of ``total`` images computed (the rest of the
    gallery was already stored), after ``seconds``."""

    engine: str
    done: int
    total: int
    seconds: float
    #: What happens before images are computed ("Loading the model..."); shown instead of counts.
    phase: str = ""

    @property
    def rate(self) -> float:
        """Images per second so far."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """At the rate so far; ``None`` before the first image."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def describe(self) -> str:
        """``Indexing (clip): 1,234 of 10,000 images · 5.1 images/s · about 29 min left``.

        The estimate waits for a few images (at least 8, or 2% of the build): the first batch
        also pays for warming the model up, and an estimate from it said "about 11 min" for a
        build of 28 s."""
        if self.phase:
            return self.phase
        text = f"Indexing ({self.engine}): {self.done:,} of {self.total:,} images"
        if self.rate > 0:
            text += f" · {self.rate:.1f} images/s"
        left = self.seconds_left
        if left is not None and self.done < self.total and self.done >= max(8, self.total // 50):
            text += f" · about {_duration(left)} left"
        return text


#: What ``engine.index(progress=...)`` takes: ``True`` for a progress bar on stderr (tqdm),
#: ``False`` for none, or a callback handed an :class:`IndexProgress` at least every half
#: second while images are computed; it may raise ``IndexCancelledError`` to stop the build
#: (what was computed is stored first).
Progress = bool | Callable[[IndexProgress], None]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def passing_threshold(results: list[SearchResult], threshold: float, higher_is_better: bool) -> list[SearchResult]:
    """The results not worse than ``threshold`` in the metric's own direction."""
    if higher_is_better:
        return [r for r in results if r.score >= threshold]
    return [r for r in results if r.score <= threshold]


def summarise_skipped(skipped: list[SkippedFile], indexed: int) -> str:
    """One line for a build's skipped files: a count per reason, with one example each."""
    counts = Counter(s.reason for s in skipped)
    example = {s.reason: s.source for s in reversed(skipped)}
    reasons = "; ".join(
        f"{count:,} {reason} (e.g. {printable(example[reason])})" for reason, count in counts.most_common()
    )
    return f"{indexed:,} indexed, {len(skipped):,} skipped: {reasons}"


def printable(text: str) -> str:
    """``text`` as valid UTF-8 for people, pages and CSV files: a file name's bytes that are
    not UTF-8 (kept by Python as surrogates, ``bad\\udcff.png``) are shown escaped
    (``bad\\xff.png``). A name with a backslash shows it doubled, so two different names never
    look the same (a file really named ``bad\\xff.png`` shows as ``bad\\\\xff.png``)."""
    if "\\" not in text:
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    text = text.replace("\\", "\\\\")
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Person:
    """One person of the gallery: a name (``""`` until the user gives one) and their faces,
    each as ``(photo path, box)``, with the keys ``name_person`` takes."""

    name: str
    faces: tuple[tuple[str | None, tuple[float, float, float, float]], ...]
    keys: tuple[str, ...]
