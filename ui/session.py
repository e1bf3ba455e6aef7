"""One search as the Search tab keeps it (in a ``gr.State``, per browser tab): what was asked,
the results, the user's marks. Frozen: every step makes a new one (``dataclasses.replace``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from engines import Filter, SearchResult
from engines.metrics import higher_is_better


@dataclass(frozen=True)
class SearchSession:
    source: str
    name: str
    choices: dict[str, str | None]
    metric: str | None
    k: int
    labels: tuple[str, ...] = ()
    #: The upload's path (an image query), and the sentence; never each other.
    image: str | None = None
    text: str = ""
    results: tuple[SearchResult, ...] = ()
    #: The first round's results, which "Start over" brings back.
    original: tuple[SearchResult, ...] = ()
    relevant: tuple[SearchResult, ...] = ()
    irrelevant: tuple[SearchResult, ...] = ()
    rounds: int = 0
    elapsed_ms: float = 0.0
    #: The first round's time, which "Start over" shows again with its results.
    original_ms: float = 0.0
    #: How many images the index held.
    total: int = 0
    #: What the page should say beside the results (a folder that changed).
    note: str = field(default="", compare=False)
    #: Dates, cameras, location asked for (``labels`` stay apart: the page's own picker).
    filter: Filter | None = None
    #: The model that made the vectors, for a learned engine ("" for pixels): the summary names it.
    model: str = field(default="", compare=False)
    #: A sentence's ranking fused with the words photos show (``engines.fusion``).
    with_words: bool = False

    @property
    def higher_is_better(self) -> bool:
        """Which way the session's metric is better (a similarity: higher; a distance: lower)."""
        return self.metric is not None and higher_is_better(self.metric)


def asked(session: SearchSession) -> str:
    """What was searched, in a few words: ``image + 'at night'``, ``'a red bus'``, ``image``,
    and the photos it was limited to (``taken 2023-01-01 to 2023-12-31``)."""
    words = f"'{session.text}'" if len(session.text) <= 60 else f"'{session.text[:57]}…'"
    what = f"image + {words}" if session.image and session.text else "image" if session.image else words
    return what + filter_words(session.filter)


def filter_words(chosen: Filter | None) -> str:
    if chosen is None:
        return ""
    parts = []
    if chosen.taken is not None:
        start, end = (time.strftime("%Y-%m-%d", time.gmtime(t)) if t is not None else "…" for t in chosen.taken)
        parts.append(f"taken {start} to {end}")
    if chosen.camera is not None:
        parts.append("by " + ", ".join(chosen.camera))
    if chosen.has_location is not None:
        parts.append("with a location" if chosen.has_location else "without a location")
    if chosen.tags:
        parts.append("tagged " + " and ".join(f"'{tag}'" for tag in chosen.tags))  # every one
    if chosen.text:
        parts.append(f"showing the words '{' '.join(chosen.text)}'")
    if chosen.people:
        parts.append("with " + " or ".join(chosen.people))
    return f" ({'; '.join(parts)})" if parts else ""


def described(result: SearchResult) -> str:
    """A result as the marks line names it: its file name, or its class and place."""
    return Path(result.path).name if result.path else f"{result.label} #{result.position}"


def same(a: SearchResult, b: SearchResult) -> bool:
    """Whether two results are one image (ranks and scores change between rounds)."""
    return (a.record, a.path, a.position) == (b.record, b.path, b.position)
