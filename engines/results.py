"""The records engines hand back: a ranked result, and a gallery file that was not indexed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


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

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def rate(self) -> float:
        """Images per second so far."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """At the rate so far; ``None`` before the first image."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def describe(self) -> str:
        """``Indexing (clip): 1,234 of 10,000 images · 5.1 images/s · about 29 min left``."""
        text = f"Indexing ({self.engine}): {self.done:,} of {self.total:,} images"
        if self.rate > 0:
            text += f" · {self.rate:.1f} images/s"
        left = self.seconds_left
        if left is not None and self.done < self.total:
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
    not UTF-8 (kept by Python as surrogates, ``bad\\udcff.png``) are shown escaped (``bad\\xff.png``)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
