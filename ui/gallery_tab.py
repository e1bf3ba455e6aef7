"""The Gallery tab: load a folder or Hub dataset, see what is in it, build an engine's index."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import gradio as gr

from engines import EngineError, Gallery, GalleryItem
from engines.results import printable

from . import map_view
from .actions import galleries
from .controls import EngineControls, stop_button
from .messages import USER_ERRORS, in_the_page
from .named import Parts
from .service import SearchService
from .tiles import THUMBNAIL_WORKERS

if TYPE_CHECKING:  # the page hands the Search tab's hooks over; no tab imports another
    from .search_tab import SearchHooks

#: Thumbnails on one page of the Gallery tab.
PAGE_SIZE = 24
#: Images tried per class for its thumbnail before the class is shown without one.
CLASS_TRIES = 5


def page_of(service: SearchService, gallery: Gallery, page: float | None) -> tuple[list[tuple[Any, str]], str, int]:
    """One page of thumbnails (one per class, or every image of an unlabelled tree), a line
    saying where it is, and the number of pages."""
    database = gallery["train"]
    if gallery.labelled:
        members: dict[str, list[GalleryItem]] = {}
        for item in database:
            members.setdefault(item.label, []).append(item)
        shown, noun = [members[label] for label in sorted(members)], "classes"
    else:
        shown, noun = [[item] for item in database], "images"
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    number = min(max(1, int(page or 1)), pages)
    chosen = shown[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]

    def first_readable(candidates: list[GalleryItem]) -> tuple[Any, str] | None:
        # A class is shown by its first image that can be read (its first file may be broken);
        # a photo tree's image by its folder and file name, not its folder alone.
        for item in candidates[:CLASS_TRIES]:
            try:
                folder = printable(item.label) or "(top folder)"
                name = printable(os.path.basename(item.path)) if item.path and not gallery.labelled else ""
                return service.thumbnails.file_of(item), f"{folder}/{name}" if name else folder
            except (EngineError, OSError):
                continue
        return None

    with ThreadPoolExecutor(THUMBNAIL_WORKERS) as pool:
        thumbs = [found for found in pool.map(first_readable, chosen) if found is not None]
    start = (number - 1) * PAGE_SIZE + 1
    return thumbs, f"{noun} {start}–{start + len(chosen) - 1} of {len(shown)} (page {number} of {pages})", pages


#: What loading a gallery changes, by name (the page opens with it too).
SHOWN = ("source", "counts", "thumbs", "page", "labels", "loaded")


def show(service: SearchService, source: str, *, reload: bool) -> dict[str, Any]:
    """What the page shows of the gallery at ``source``, by name (``SHOWN``): the source, counts,
    thumbnails, page control, class choices and status line."""
    loaded = galleries.load(service, source, reload=reload)
    thumbs, where, pages = page_of(service, loaded.gallery, 1)
    return {"source": loaded.source, "counts": loaded.rows, "thumbs": gr.update(value=thumbs, label=where),
            "page": gr.update(maximum=max(2, pages), value=1, visible=pages > 1),
            "labels": gr.update(choices=loaded.gallery.labels, value=[]), "loaded": loaded.text}


def turn_page(service: SearchService, source: str, page: float) -> Any:
    """The thumbnails of page ``page``."""
    try:
        thumbs, where, _ = page_of(service, service.gallery(source), page)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    return gr.update(value=thumbs, label=where)


def build_index(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], progress: Any = None
) -> dict[str, Any]:
    """Read the gallery again and rebuild engine ``name``'s index: ``index_status`` and ``skipped`` (files)."""
    report = galleries.build_index(service, source, name, choices, progress)
    return {"index_status": report.status, "skipped": report.skipped}


def build(
    service: SearchService, controls: EngineControls, source: gr.State, labels: gr.Dropdown
) -> Parts:
    """The tab's components and events; returns those loading a gallery changes (``SHOWN``), for
    the page's load event."""
    with gr.Row():
        # A public page names the gallery by its folder's name, never the server's path.
        source_box = gr.Textbox(service.shown(service.config.data), label="Gallery folder or Hugging Face dataset id",
                                scale=3,
                                elem_id="gallery-source")
        load_button = gr.Button("Load gallery", scale=1, elem_id="load-gallery")
    loaded = gr.Markdown(elem_id="gallery-status")
    counts = gr.Dataframe(headers=["split", "classes or folders", "images"], label="Contents", interactive=False,
                          elem_id="gallery-contents")
    thumbs = gr.Gallery(label="One image per class", columns=8, height=300, elem_id="gallery-thumbnails")
    page = gr.Slider(1, 2, value=1, step=1, label="Page", visible=False, elem_id="gallery-page")
    with gr.Row():
        index_button = gr.Button("Build / refresh the index for the chosen engine", variant="primary",
                                 elem_id="index-button", scale=4)
        stop_button(service, controls, source, "stop-index-button")
    index_status = gr.Markdown(elem_id="index-status")
    gr.Markdown(service.config.storage_note, visible=bool(service.config.storage_note), elem_id="storage-note")
    skipped = gr.Dataframe(headers=["file", "reason"], label="Skipped files", interactive=False)

    parts = Parts(source=source, counts=counts, thumbs=thumbs, page=page, labels=labels, loaded=loaded,
                  index_status=index_status, skipped=skipped)

    def on_load(value: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> dict[Any, Any]:
        return parts.show(show(service, value, reload=True))  # the user asked: read the folder again

    n = len(controls.options)

    def on_build(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> dict[Any, Any]:
        return parts.show(build_index(service, source_value, name, controls.choices(values[:n]), progress))

    def on_page(source_value: str, number: float) -> Any:
        return turn_page(service, source_value, number)

    def load_failed(message: str) -> dict[Any, Any]:
        # The active gallery stays, and stays shown: only the line says the new one was not loaded.
        return parts.show({"loaded": f"**Could not load that gallery; the one below is still the active gallery.** "
                                     f"{message}"})

    def build_failed(message: str) -> dict[Any, Any]:
        return parts.show({"index_status": f"**Could not build the index.** {message}", "skipped": []})

    # The page shows failures in words (in_the_page); the API endpoints raise them.
    load_button.click(in_the_page(on_load, load_failed), source_box, parts.outputs(*SHOWN), api_visibility="private")
    # input: dragging, and a number typed in the slider's box (Enter); the last one wins.
    page.input(on_page, [source, page], thumbs, api_visibility="private", trigger_mode="always_last")
    inputs = [source, controls.engine, *controls.inputs]
    index_button.click(in_the_page(on_build, build_failed), inputs, parts.outputs("index_status", "skipped"),
                       api_visibility="private", concurrency_limit=1, concurrency_id="build_index")
    return parts


def draw_map(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str, progress: Any = None
) -> dict[str, Any]:
    """Engine ``name``'s map of ``source``, by name: ``picture``, ``described`` and ``points``."""
    drawn = galleries.draw_map(service, source, name, choices, metric, progress)
    return {"picture": drawn.picture, "described": drawn.text, "points": drawn.points}


def pick(service: SearchService, source: str, points: map_view.Points, where: Any) -> dict[str, Any]:
    """The map point nearest the click at ``where`` (x, y), by name: ``chosen`` (its image),
    ``chosen_text`` and ``chosen_path`` (``None`` where there is no file to search with)."""
    if not points or not isinstance(where, (list, tuple)) or len(where) != 2:
        return {"chosen": None, "chosen_text": "Draw the map, then click a point.", "chosen_path": None}
    member = map_view.nearest(points, float(where[0]), float(where[1]))
    if member is None:
        return {"chosen": None, "chosen_text": "", "chosen_path": None}
    try:
        gallery = service.gallery(source)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    tile, note = service.picture(member, gallery)
    label = printable(member.label) or "(top folder)"
    path = member.path if isinstance(tile, str) and member.path is not None else None
    where_it_is = service.shown(member.path) if member.path else f"item #{member.position}"
    return {"chosen": tile, "chosen_text": f"**{label}** · {where_it_is} {note}", "chosen_path": path}


def build_map(
    service: SearchService, controls: EngineControls, source: gr.State, search: SearchHooks, tabs: gr.Tabs
) -> None:
    """The gallery map (under the Gallery tab's contents): draw it, click a point, search with it."""
    gr.Markdown("### Map of the gallery\nHow the chosen engine groups the gallery: similar images lie close together.")
    draw_button = gr.Button("Draw the map for the chosen engine", elem_id="map-button")
    described = gr.Markdown(elem_id="map-status")
    with gr.Row():
        picture = gr.Image(label="Map (click a point)", interactive=False, elem_id="gallery-map", scale=3)
        with gr.Column(scale=1):
            chosen = gr.Image(label="Chosen image", interactive=False, height=220, elem_id="map-chosen")
            chosen_text = gr.Markdown(elem_id="map-chosen-text")
            use = gr.Button("Search with this image", elem_id="map-search")
    points = gr.State([])
    chosen_path = gr.State(None)
    parts = Parts(picture=picture, described=described, points=points, chosen=chosen, chosen_text=chosen_text,
                  chosen_path=chosen_path)
    n = len(controls.options)

    def on_draw(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> dict[Any, Any]:
        choices, metric = controls.choices(values[:n]), values[n]
        return parts.show(draw_map(service, source_value, name, choices, metric, progress))

    def draw_failed(message: str) -> dict[Any, Any]:
        return parts.show({"picture": None, "described": f"**Could not draw the map.** {message}", "points": []})

    def on_pick(source_value: str, state: list[Any], evt: gr.SelectData) -> dict[Any, Any]:
        return parts.show(pick(service, source_value, state, evt.index))

    def pick_failed(message: str) -> dict[Any, Any]:
        return parts.show({"chosen": None, "chosen_text": f"**Could not show that image.** {message}",
                           "chosen_path": None})

    def on_use(path: str | None) -> dict[Any, Any]:
        if path is None:
            raise gr.Error("Click a point of the map first (an image with a file).")
        return {search.image: service.uploads.preview(path), search.text: "", tabs: gr.Tabs(selected="search")}

    inputs = [source, controls.engine, *controls.inputs, controls.metric]
    draw_button.click(in_the_page(on_draw, draw_failed), inputs, parts.outputs("picture", "described", "points"),
                      api_visibility="private", concurrency_limit=1, concurrency_id="map")
    picture.select(in_the_page(on_pick, pick_failed), [source, points], parts.outputs("chosen", "chosen_text",
                                                                                       "chosen_path"),
                   api_visibility="private")
    # The Search tab opens with the image as its query, and searches with it.
    search.then_search(use.click(on_use, chosen_path, [search.image, search.text, tabs], api_visibility="private"))
