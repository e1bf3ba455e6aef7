"""Which gallery images a search may return: classes, the date taken, the camera, a location.

``search(query, filter=Filter(taken=("2023-01-01", "2023-12-31"), camera="Apple iPhone 13"))``.
The pixel and CLIP engines apply it to their rows before ranking, exactly; the Chroma engine
as a ``where`` clause, and searches the rows it keeps exactly when they are few (Chroma's
approximate index loses recall on very selective filters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import numpy as np

from .errors import InvalidQueryError
from .galleries.photo_info import PhotoTable

When = date | datetime | str | float | None


_MONTHS = {name: n for n, name in enumerate(
    "january february march april may june july august september october november december".split(), start=1)}


def _partial_date(text: str, end: bool) -> date | None:
    """A year (``2023``), a month (``2023-06``, ``June 2023``, ``Jun 2023``) as its first day,
    or its last where it ends a span; ``None`` for anything else."""
    import calendar

    words = text.replace(",", " ").split()
    year = month = None
    if len(words) == 1 and words[0].isdigit() and len(words[0]) == 4:
        year = int(words[0])
    elif len(words) == 1 and len(words[0]) == 7 and words[0][4] == "-" and words[0].replace("-", "").isdigit():
        year, month = int(words[0][:4]), int(words[0][5:])
    elif len(words) == 2 and words[1].isdigit() and len(words[1]) == 4:
        named = [n for name, n in _MONTHS.items() if len(words[0]) >= 3 and name.startswith(words[0].casefold())]
        if len(named) == 1:
            year, month = int(words[1]), named[0]
    if year is None or not 1 <= (month or 1) <= 12 or not 1800 <= year <= 2200:
        return None
    if month is None:
        return date(year, 12, 31) if end else date(year, 1, 1)
    return date(year, month, calendar.monthrange(year, month)[1]) if end else date(year, month, 1)


def _full_date(text: str) -> date | datetime:
    try:
        return datetime.fromisoformat(text.strip()) if "T" in text or " " in text.strip() \
            else date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidQueryError(
            f"Expected a date such as 2023-06-30, a month such as 2023-06 or June 2023, or a year, got {text!r}"
        ) from None


def _moment(value: When, end: bool) -> float | None:
    """``value`` as seconds (the photos' clock, read as UTC); a day's end includes all of it."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        value = _partial_date(value.strip(), end) or _full_date(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, date):
        return datetime.combine(value, time.max if end else time.min, tzinfo=UTC).timestamp()
    raise InvalidQueryError(f"Expected a date, a datetime or an ISO date text, got {value!r}")


def _names(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
    names = tuple(name for name in names if name.strip())
    return names or None


@dataclass(frozen=True, init=False)
class Filter:
    """Keep gallery images of these ``labels``, ``taken`` between two dates (either may be
    ``None``; a date includes its whole day), by one of these ``camera`` names ("Make Model"
    as ``PhotoInfo.camera`` says, any case), with or without a GPS position, and carrying every
    one of these ``tags`` (the user's words, ``engine.tag``: CLIP-family engines), and showing
    the words ``text`` (read by the words engine, ``create_engine("ocr")``, for the same photos),
    and showing one of these ``people`` (names given with the faces engine's ``name_person``)."""

    labels: tuple[str, ...] | None
    taken: tuple[float | None, float | None] | None
    camera: tuple[str, ...] | None
    has_location: bool | None
    tags: tuple[str, ...] | None
    text: tuple[str, ...] | None
    people: tuple[str, ...] | None

    def __init__(self, labels: str | Sequence[str] | None = None, taken: tuple[When, When] | None = None,
                 camera: str | Sequence[str] | None = None, has_location: bool | None = None,
                 tags: str | Sequence[str] | None = None, text: str | Sequence[str] | None = None,
                 people: str | Sequence[str] | None = None) -> None:
        span = None
        if taken is not None:
            if not isinstance(taken, (tuple, list)) or len(taken) != 2:
                raise InvalidQueryError(f"Expected taken=(start, end), got {taken!r}")
            span = (_moment(taken[0], end=False), _moment(taken[1], end=True))
            if span[0] is not None and span[1] is not None and span[0] > span[1]:
                raise InvalidQueryError(f"Expected the first date ({taken[0]}) to come before the last ({taken[1]})")
            if span == (None, None):
                span = None
        if has_location is not None and not isinstance(has_location, bool):
            raise InvalidQueryError(f"Expected has_location to be True, False or None, got {has_location!r}")
        object.__setattr__(self, "labels", _names(labels))
        object.__setattr__(self, "taken", span)
        object.__setattr__(self, "camera", _names(camera))
        object.__setattr__(self, "has_location", has_location)
        object.__setattr__(self, "tags", _names(tags))
        object.__setattr__(self, "text", _names(text))
        object.__setattr__(self, "people", _names(people))

    @property
    def reads_photos(self) -> bool:
        """Whether it needs the photos' details (dates, cameras, locations), not only classes."""
        return self.taken is not None or self.camera is not None or self.has_location is not None

    def keeps(self, labels: np.ndarray, photos: PhotoTable | None, tagged: np.ndarray | None = None) -> np.ndarray:
        """The rows (a bool per row) this filter keeps; ``tagged``: the rows carrying its tags."""
        kept = np.ones(len(labels), dtype=bool)
        if tagged is not None:
            kept &= tagged
        if self.labels is not None:
            kept &= np.isin(labels, list(self.labels))
        if photos is None:
            return kept
        if self.taken is not None:
            start, end = self.taken
            with np.errstate(invalid="ignore"):  # NaN (no date) passes no bound
                if start is not None:
                    kept &= photos.taken >= start
                if end is not None:
                    kept &= photos.taken <= end
        if self.camera is not None:
            kept &= photos.by_camera(self.camera)
        if self.has_location is not None:
            kept &= photos.has_location == self.has_location
        return kept

    def where(self) -> dict[str, Any] | None:
        """The filter as a Chroma ``where`` clause over the metadata the Chroma engine stores
        (tags are not metadata: the engine applies them to the rows it keeps)."""
        clauses: list[dict[str, Any]] = []
        if self.labels is not None:
            clauses.append({"label": {"$in": sorted(self.labels)}})
        if self.taken is not None:
            if self.taken[0] is not None:
                clauses.append({"taken": {"$gte": self.taken[0]}})
            if self.taken[1] is not None:
                clauses.append({"taken": {"$lte": self.taken[1]}})
        if self.camera is not None:
            clauses.append({"camera_key": {"$in": sorted({name.casefold() for name in self.camera})}})
        if self.has_location is not None:
            clauses.append({"has_location": self.has_location})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def with_labels(chosen: Filter | None, labels: str | Sequence[str] | None) -> Filter | None:
    """``chosen`` with the ``labels=`` shorthand folded in (given both ways: refused)."""
    if chosen is not None and not isinstance(chosen, Filter):
        raise InvalidQueryError(f"Expected filter to be an engines.Filter, got {type(chosen).__name__}")
    names = _names(labels)
    if names is None:
        return chosen
    if chosen is None:
        return Filter(labels=names)
    if chosen.labels is not None:
        raise InvalidQueryError("Expected labels in the filter or as labels=, got both")
    return Filter(labels=names, taken=chosen.taken, camera=chosen.camera, has_location=chosen.has_location,
                  tags=chosen.tags, text=chosen.text, people=chosen.people)
