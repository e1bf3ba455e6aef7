"""The Gallery tab: load a folder or Hub dataset, see what is in it, build an engine's index."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from engines import EngineError, GalleryItem, available_engines

from .controls import EngineControls
from .images import thumbnail
from .messages import USER_ERRORS, user_error
from .service import SearchService

#: Thumbnails shown, one per class.
SHOWN_CLASSES = 12


def show(service: SearchService, source: str, *, reload: bool) -> tuple[Any, ...]:
    """(source, counts, thumbnails, class choices, status) of the gallery at ``source``."""
    try:
        gallery = service.gallery(source, reload=reload)
    except USER_ERRORS as exc:
        raise user_error(exc) from exc
    rows = [[split, len({i.label for i in items}), len(items)] for split, items in gallery.splits.items()]
    per_class: dict[str, GalleryItem] = {}
    for item in gallery.splits["train"]:
        per_class.setdefault(item.label, item)
    thumbs = []
    for item in list(per_class.values())[:SHOWN_CLASSES]:
        try:
            thumbs.append((item.path or thumbnail(item), item.label))
        except EngineError:
            continue
    return (
        gallery.source, rows, thumbs,
        gr.update(choices=gallery.labels, value=[]),
        f"Loaded **{gallery.source}**: {len(gallery.labels)} classes.",
    )


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
) -> tuple[Any, Any, Any]:
    """The tab's components and events; returns the outputs the page's load event fills."""
    with gr.Row():
        source_box = gr.Textbox(service.config.data, label="Gallery folder or Hugging Face dataset id", scale=3)
        load_button = gr.Button("Load gallery", scale=1)
    loaded = gr.Markdown()
    counts = gr.Dataframe(headers=["split", "classes", "images"], label="Contents", interactive=False)
    thumbs = gr.Gallery(label="One image per class", columns=6, height=260)
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

    load_button.click(on_load, source_box, [source, counts, thumbs, labels, loaded], api_name="load_gallery")
    index_button.click(
        on_build, [source, controls.engine, *controls.inputs], [index_status, skipped],
        api_name="build_index", concurrency_limit=1,
    )
    return counts, thumbs, loaded
