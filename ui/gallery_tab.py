"""The Gallery tab: load a folder or Hub dataset, see what is in it, build an engine's index."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from engines import EngineError, Gallery, GalleryItem, available_engines

from .controls import EngineControls
from .images import thumbnail
from .messages import USER_ERRORS, in_the_page, user_error
from .service import SearchService

#: Thumbnails on one page of the Gallery tab.
PAGE_SIZE = 24


def overview(gallery: Gallery) -> tuple[list[list[Any]], str]:
    """(rows of split, classes or folders, images; a sentence) describing ``gallery``."""
    kind = "classes" if gallery.labelled else "folders"
    rows = [[split, len({i.label for i in items}), len(items)] for split, items in gallery.splits.items()]
    if gallery.labelled:
        splits = " and ".join(f"{len(items)} {split}" for split, items in gallery.splits.items())
        text = f"Loaded **{gallery.source}**: {len(gallery.labels)} {kind}, {splits} images."
    else:
        text = (
            f"Loaded **{gallery.source}**: {len(gallery['train'])} images in {len(gallery.labels)} {kind}. "
            "Search works on it; evaluation needs a folder per class."
        )
    return rows, text


def page_of(gallery: Gallery, page: float | None) -> tuple[list[tuple[Any, str]], str, int]:
    """One page of thumbnails (one per class, or every image of an unlabelled tree), a line
    saying where it is, and the number of pages."""
    database = gallery["train"]
    if gallery.labelled:
        first: dict[str, GalleryItem] = {}
        for item in database:
            first.setdefault(item.label, item)
        shown, noun = [first[label] for label in sorted(first)], "classes"
    else:
        shown, noun = list(database), "images"
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    number = min(max(1, int(page or 1)), pages)
    chosen = shown[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    thumbs = []
    for item in chosen:
        try:
            thumbs.append((item.path or thumbnail(item), item.label or "(top folder)"))
        except EngineError:
            continue
    start = (number - 1) * PAGE_SIZE + 1
    return thumbs, f"{noun} {start}–{start + len(chosen) - 1} of {len(shown)} (page {number} of {pages})", pages


def show(service: SearchService, source: str, *, reload: bool) -> tuple[Any, ...]:
    """(source, counts, thumbnails, page control, class choices, status) of the gallery at ``source``."""
    try:
        gallery = service.gallery(source, reload=reload)
    except USER_ERRORS as exc:
        raise user_error(exc) from exc
    rows, text = overview(gallery)
    thumbs, where, pages = page_of(gallery, 1)
    return (
        gallery.source, rows, gr.update(value=thumbs, label=where),
        gr.update(maximum=max(2, pages), value=1, visible=pages > 1),
        gr.update(choices=gallery.labels, value=[]), text,
    )


def turn_page(service: SearchService, source: str, page: float) -> Any:
    """The thumbnails of page ``page``."""
    try:
        thumbs, where, _ = page_of(service.gallery(source), page)
    except USER_ERRORS as exc:
        raise user_error(exc) from exc
    return gr.update(value=thumbs, label=where)


def build_index(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], progress: Any = None
) -> tuple[str, list[list[str]]]:
    """Read the gallery again and rebuild engine ``name``'s index: (status, skipped files)."""
    try:
        # A refresh must see files added, changed or removed since the gallery was read.
        gallery = service.gallery(source, reload=True)
        started = time.perf_counter()
        engine = service.engine(name, gallery, choices, rebuild=True)
    except USER_ERRORS as exc:
        raise user_error(exc) from exc
    seconds = time.perf_counter() - started
    skipped = [[s.source, s.reason] for s in engine.skipped]
    status = (
        f"Indexed **{len(engine)}** images of {gallery.source} with {available_engines()[name]} "
        f"in {seconds:.1f} s; {len(skipped)} skipped."
    )
    return status, skipped


def build(
    service: SearchService, controls: EngineControls, source: gr.State, labels: gr.Dropdown
) -> tuple[Any, Any, Any, Any]:
    """The tab's components and events; returns the outputs the page's load event fills."""
    with gr.Row():
        source_box = gr.Textbox(service.config.data, label="Gallery folder or Hugging Face dataset id", scale=3)
        load_button = gr.Button("Load gallery", scale=1)
    loaded = gr.Markdown(elem_id="gallery-status")
    counts = gr.Dataframe(headers=["split", "classes or folders", "images"], label="Contents", interactive=False)
    thumbs = gr.Gallery(label="One image per class", columns=8, height=300, elem_id="gallery-thumbnails")
    page = gr.Slider(1, 2, value=1, step=1, label="Page", visible=False)
    index_button = gr.Button("Build / refresh the index for the chosen engine", variant="primary", elem_id="index-button")
    index_status = gr.Markdown(elem_id="index-status")
    skipped = gr.Dataframe(headers=["file", "reason"], label="Skipped files", interactive=False)

    def on_load(value: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple[Any, ...]:
        return show(service, value, reload=True)  # the user asked: read the folder again

    n = len(controls.options)

    def on_build(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> tuple[str, list[list[str]]]:
        return build_index(service, source_value, name, controls.choices(values[:n]), progress)

    def on_page(source_value: str, number: float) -> Any:
        return turn_page(service, source_value, number)

    def load_failed(message: str) -> tuple[Any, ...]:
        return gr.update(), [], gr.update(value=[]), gr.update(visible=False), gr.update(), (
            f"**Could not load the gallery.** {message}"
        )

    def build_failed(message: str) -> tuple[str, list[list[str]]]:
        return f"**Could not build the index.** {message}", []

    # The page shows failures in words (in_the_page); the API endpoints raise them.
    outputs = [source, counts, thumbs, page, labels, loaded]
    load_button.click(in_the_page(on_load, load_failed), source_box, outputs, api_visibility="private")
    gr.Button(visible=False).click(on_load, source_box, outputs, api_name="load_gallery")
    page.release(on_page, [source, page], thumbs, api_visibility="private")
    inputs = [source, controls.engine, *controls.inputs]
    index_button.click(in_the_page(on_build, build_failed), inputs, [index_status, skipped],
                       api_visibility="private", concurrency_limit=1, concurrency_id="build_index")
    gr.Button(visible=False).click(on_build, inputs, [index_status, skipped], api_name="build_index",
                                   concurrency_id="build_index")
    return counts, thumbs, page, loaded
