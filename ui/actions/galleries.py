"""Galleries: load one (a folder or an allowed Hub dataset), build an engine's index of it,
draw the map of that index."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from engines import Gallery, IndexCancelledError, available_engines

from .. import map_view
from ..controls import progress_bar
from ..messages import USER_ERRORS, count
from ..service import SearchService


@dataclass(frozen=True)
class GalleryOverview:
    """A loaded gallery: its ``source`` as the page keeps it, a row per split (split,
    classes or folders, images) and a sentence."""

    gallery: Gallery
    source: str
    rows: list[list[Any]]
    text: str


@dataclass(frozen=True)
class IndexReport:
    """What building an index did: a line, and the files skipped with their reasons."""

    status: str
    skipped: list[list[str]]


@dataclass(frozen=True)
class GalleryMap:
    """The map of an index: the picture, a line describing it, and each point's place and image."""

    picture: Any
    text: str
    points: map_view.Points


def split_name(gallery: Gallery, split: str) -> str:
    """A split as the page names it: a photo tree's only split is "all photos", not "train"."""
    return "all photos" if not gallery.labelled and list(gallery.splits) == [split] else split


def overview(gallery: Gallery, name: str) -> tuple[list[list[Any]], str]:
    """(rows of split, classes or folders, images; a sentence) describing ``gallery`` (called ``name``)."""
    rows = [[split_name(gallery, split), len({i.label for i in items}), len(items)]
             for split, items in gallery.splits.items()]
    if gallery.labelled:
        splits = " and ".join(f"{len(items):,} {split}" for split, items in gallery.splits.items())
        text = f"Loaded **{name}**: {count(len(gallery.labels), 'class', 'classes')}, {splits} images."
    else:
        text = (
            f"Loaded **{name}**: {count(len(gallery['train']), 'image')} in {count(len(gallery.labels), 'folder')}. "
            "Search works on it; evaluation needs a folder per class."
        )
    return rows, text


def load(service: SearchService, source: str, *, reload: bool) -> GalleryOverview:
    """The gallery at ``source`` (read again where ``reload``), described."""
    try:
        gallery = service.gallery(source, reload=reload)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    rows, text = overview(gallery, service.shown(gallery.source))
    return GalleryOverview(gallery, gallery.source, rows, text)


def build_index(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], progress: Any = None
) -> IndexReport:
    """Read the gallery again and rebuild engine ``name``'s index."""
    try:
        # A refresh must see files added, changed or removed since the gallery was read.
        gallery = service.gallery(source, reload=True)
        started = time.perf_counter()
        engine = service.engine(name, gallery, choices, rebuild=True, progress=progress_bar(progress))
    except IndexCancelledError as exc:  # the user pressed Stop: said as what happened, not as a failure
        return IndexReport(f"**Stopped.** {service.redact(str(exc))}.", [])
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    seconds = time.perf_counter() - started
    skipped = [[service.shown(s.source), service.redact(s.reason)] for s in engine.skipped]
    held = engine.index_summary()  # what the index holds beyond its count (photos with text, faces)
    status = (
        f"Indexed **{len(engine)}** images of {service.shown(gallery.source)} with {available_engines()[name]} "
        f"in {seconds:.1f} s; {len(skipped)} skipped." + (f" {held[0].upper()}{held[1:]}." if held else "")
    )
    return IndexReport(status, skipped)


def draw_map(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str, progress: Any = None
) -> GalleryMap:
    """The map of engine ``name``'s index of ``source``."""
    try:
        gallery = service.gallery(source)
        engine = service.engine(name, gallery, choices, progress=progress_bar(progress))
        started = time.perf_counter()

        def mapped() -> tuple[Any, Any, map_view.Points]:
            found = engine.gallery_map(metric)
            return (found, *map_view.draw(found, lambda member, size: service.small_picture(member, gallery, size)))

        found, picture, points = service.in_background(mapped)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    text = map_view.describe_map(found, available_engines()[name], time.perf_counter() - started)
    return GalleryMap(picture, text, points)
