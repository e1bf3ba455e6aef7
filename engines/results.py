"""The records engines hand back: a ranked result, and a gallery file that was not indexed."""

from __future__ import annotations

from collections import Counter
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
