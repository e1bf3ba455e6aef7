"""Duplicates: groups of copies in a gallery as an engine sees them. Lists; never deletes or moves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engines import SearchEngine
from engines.galleries.gallery import Gallery
from engines.results import DuplicateGroup

from ..controls import progress_bar
from ..messages import USER_ERRORS, number_from
from ..service import SearchService


@dataclass(frozen=True)
class DuplicatesFound:
    """The groups, the gallery and engine they come from, the threshold used, and a note on
    folder changes since the index was built ("" where none)."""

    groups: list[DuplicateGroup]
    gallery: Gallery
    engine: SearchEngine
    threshold: float
    note: str


def find_groups(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str,
    threshold: float | None, progress: Any = None, verify: bool = True,
) -> DuplicatesFound:
    """The duplicates in ``source``; ``threshold`` ``None`` uses the engine's default for
    ``metric`` (a loose one for candidates when ``verify``: each near pair is then confirmed
    by local features)."""
    try:
        engine, gallery, note = service.current(name, source, choices, progress=progress_bar(progress))
        default = engine.candidate_threshold(metric) if verify else engine.duplicate_threshold(metric)
        used = default if threshold is None else number_from(threshold, "the threshold")
        groups = service.in_background(lambda: engine.duplicates(threshold=used, metric=metric, verify=verify))
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    return DuplicatesFound(groups, gallery, engine, used, note)
