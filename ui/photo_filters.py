"""The Search tab's date, camera and location pickers, and what the gallery's photos hold."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from engines import GalleryItem, SearchResult
from engines.galleries.photo_info import PhotoInfoCache, table_of
from engines.workspace import Workspace

from .messages import USER_ERRORS, count, in_the_page
from .service import SearchService

LOCATED = ("any", "with a location", "without")


@dataclass
class FilterControls:
    taken_from: gr.Textbox
    taken_to: gr.Textbox
    cameras: gr.Dropdown
    located: gr.Radio
    #: The user's tags (CLIP-family engines), named in the Gallery tab.
    tags: gr.Dropdown
    #: Words the photos must show (read by the words engine).
    words: gr.Textbox
    #: People the photos must show (named in the People tab).
    people: gr.Textbox

    @property
    def inputs(self) -> list[Any]:
        return [self.taken_from, self.taken_to, self.cameras, self.located, self.tags, self.words, self.people]


def build(service: SearchService, source: gr.State) -> FilterControls:
    """The pickers (inside the Search tab's query column), in a closed accordion."""
    with gr.Accordion("Only photos taken… (dates, cameras, location, tags, words, people)", open=False,
                      elem_id="photo-filters"):
        with gr.Row():
            taken_from = gr.Textbox(label="Taken from", placeholder="2023-01-01", elem_id="taken-from")
            taken_to = gr.Textbox(label="Taken until", placeholder="2023-12-31", elem_id="taken-to")
        cameras = gr.Dropdown([], multiselect=True, label="Cameras", elem_id="cameras")
        located = gr.Radio(list(LOCATED), value="any", label="Location", elem_id="located")
        tags = gr.Dropdown([], multiselect=True, label="Carrying every one of these tags (name them in the Gallery tab)",
                           elem_id="tag-picker")
        words = gr.Textbox(label="Showing these words (read them first: the Words in photos engine's index)",
                           placeholder="receipt 42.50", elem_id="words-filter", max_length=200)
        people = gr.Textbox(label="Showing one of these people (names from the People tab, comma-separated)",
                            placeholder="Ada, Grace", elem_id="people-filter", max_length=300)
        read = gr.Button("Read the photos' dates and cameras", size="sm", elem_id="read-photo-details")
        said = gr.Markdown(elem_id="photo-details")

    def on_read(source_value: str) -> dict[Any, Any]:
        choices, line = photo_details(service, source_value)
        return {cameras: choices, said: line}

    read.click(in_the_page(on_read, lambda message: {said: f"**Could not read the photos.** {message}"}), source,
               [cameras, said], api_visibility="private", concurrency_limit=1, concurrency_id="photo_details")
    return FilterControls(taken_from, taken_to, cameras, located, tags, words, people)


def build_gallery_details(service: SearchService, source: gr.State, cameras: gr.Dropdown) -> None:
    """The Gallery tab's dates and cameras: read from the photos' headers on request (then
    remembered), shown as a line; the Search tab's camera picker gets the cameras."""
    with gr.Row():
        read = gr.Button("Dates and cameras", size="sm", scale=1, elem_id="gallery-dates-button")
        said = gr.Markdown(elem_id="gallery-dates")

    def on_read(source_value: str) -> dict[Any, Any]:
        choices, line = photo_details(service, source_value)
        return {cameras: choices, said: line}

    read.click(in_the_page(on_read, lambda message: {said: f"**Could not read the photos.** {message}"}),
               source, [cameras, said], api_visibility="private", concurrency_id="photo_details")


def photo_details(service: SearchService, source: str) -> tuple[Any, str]:
    """The camera choices with their counts, and a line on the dates: read from the headers
    of the gallery's photos once (then remembered in the cache folder)."""
    try:
        gallery = service.gallery(source)
        cache = Workspace.at(service.deployment.cache_dir).root
        table = service.reading_photos(lambda: table_of(gallery["train"], cache))
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    cameras = Counter(str(name) for name in table.camera if name)
    choices = [(f"{name} ({number:,})", name) for name, number in cameras.most_common()]
    dated = table.taken[~np.isnan(table.taken)]
    total = len(table.taken)
    if not len(dated):
        return gr.update(choices=choices, value=[]), f"{count(total, 'photo')}: no dates."
    years = Counter(time.gmtime(t).tm_year for t in dated)
    first, last = (time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (dated.min(), dated.max()))
    per_year = ", ".join(f"{number:,} from {year}" for year, number in sorted(years.items()))
    by_camera = int(table.from_exif.sum())
    dating = ("all dated by their camera" if by_camera == total else "none dated by their camera: by their file's time"
              if not by_camera else f"{by_camera:,} dated by their camera, the others by their file's time")
    line = (f"{count(total, 'photo')} taken {first} to {last} ({per_year}); {dating}; "
            f"{int(table.has_location.sum()):,} with a location; {count(len(cameras), 'camera')}.")
    return gr.update(choices=choices, value=[]), line


ORDERS = ("best match first", "newest first", "oldest first")


def ordered(service: SearchService, results: tuple[SearchResult, ...], order: str) -> tuple[SearchResult, ...]:
    """``results`` by score (as ranked), or by the date each photo was taken (undated last).
    Each result keeps its rank: the place it had by score."""
    if order not in ORDERS[1:]:
        return tuple(sorted(results, key=lambda r: r.rank))
    cache = PhotoInfoCache(Workspace.at(service.deployment.cache_dir).file_facts)
    try:
        taken = {r.rank: cache.of(GalleryItem(r.label, r.path)).taken if r.path else None for r in results}
    finally:
        cache.save()
    newest = order == ORDERS[1]
    return tuple(sorted(results, key=lambda r: (taken[r.rank] is None,
                                                -(taken[r.rank] or 0) if newest else taken[r.rank] or 0, r.rank)))
