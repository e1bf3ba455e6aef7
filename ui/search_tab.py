"""The Search tab: a query image or a sentence in, ranked gallery images out."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gradio as gr

from engines import engine_info

from .config import AppConfig
from .controls import EngineControls, progress_bar, stop_button
from .feedback import (
    apply_threshold,
    mark,
    marks_text,
    new_session,
    query_of,
    refine,
    run,
    start_over,
    threshold_slider,
)
from .messages import USER_ERRORS, explain_bad_input, in_the_page
from .service import SearchService
from .session import SearchSession

TEXT_LABEL = "…or describe what you are looking for"
TEXT_PLACEHOLDER = "a dog on a beach · combine: a dog + a beach - snow · weigh: 2:a dog + a beach"


def search(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str | None, k: float,
    labels: list[str] | None, image: str | None, text: str | None, progress: Any = None,
) -> tuple[list[tuple[Any, str]], str, SearchSession]:
    """Rank ``source``'s gallery against the uploaded image and/or the sentence.

    ``image`` is the path Gradio saved the upload under; ``text`` is always words, never
    opened as a file, whatever it says. Returns the tiles, a summary line and the session
    that relevance feedback and the threshold work on.
    """
    session = new_session(source, name, choices, metric, k, labels, image, text)
    try:
        query = query_of(image, text)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    return run(service, session, query, progress)


def text_box_for(name: str) -> Any:
    """The text box as engine ``name`` can use it: typing only where the engine reads sentences."""
    accepts = engine_info(name).accepts_text
    return gr.update(label=TEXT_LABEL + ("" if accepts else " (needs a CLIP engine)"), interactive=accepts)


def build(service: SearchService, controls: EngineControls, source: gr.State, labels: gr.Dropdown) -> gr.Image:
    """The tab's components and their events (inside a ``gr.Tab``); returns the query image,
    which the gallery map fills when a point is used as a query."""
    accepts = engine_info(str(controls.engine.value)).accepts_text
    session = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            image = explain_bad_input(gr.Image(
                # image_mode=None: Gradio hands over the upload untouched (it would otherwise
                # decode and re-save it, whatever its size, before the engines' pixel budget).
                type="filepath", image_mode=None, label="Query image", sources=["upload", "clipboard", "webcam"],
                elem_id="query-image", height=280,
            ), "an image: a JPEG, PNG, GIF, BMP, TIFF, WebP, HEIC or AVIF file")
            text = gr.Textbox(
                label=TEXT_LABEL + ("" if accepts else " (needs a CLIP engine)"), interactive=accepts,
                elem_id="query-text", placeholder=TEXT_PLACEHOLDER,
                info="With an image too, both are combined: the photo, with these words.",
            )
            with gr.Row():
                k = explain_bad_input(gr.Slider(1, 50, value=10, step=1, label="Results (k)"),
                                      "k (results) to be a whole number from 1 to 50")
                labels.render()
            go = gr.Button("Search", variant="primary", elem_id="search-button")
            with gr.Row():
                # The folder read again and the index brought up to date (only changes computed).
                update = gr.Button("Update the index", size="sm", elem_id="update-index")
                # The first search with an engine builds its index (with a progress bar): this stops it.
                stop_button(service, controls, source, "stop-search-index")
            examples = example_queries(service.config)
            if examples:
                gr.Examples(examples, inputs=[image], label="Example queries (test split)")
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="summary")
            results = gr.Gallery(label="Results", columns=5, height=520, elem_id="results", object_fit="contain")
            threshold = explain_bad_input(
                gr.Slider(0, 1, value=0, label="Score threshold", visible=False, elem_id="threshold"),
                "the threshold to be a number",
            )
            with gr.Row():
                selected = explain_bad_input(
                    gr.Number(label="Selected result (#)", precision=0, minimum=1, elem_id="selected", scale=1),
                    "the selected result to be a result's number",
                )
                relevant = gr.Button("Relevant", elem_id="mark-relevant", scale=1)
                irrelevant = gr.Button("Not relevant", elem_id="mark-irrelevant", scale=1)
                again = gr.Button("Refine", variant="primary", elem_id="refine-button", scale=1)
                reset = gr.Button("Start over", elem_id="start-over", scale=1)
            marks = gr.Markdown(elem_id="marks")

    n = len(controls.options)

    def on_search(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> tuple[list[tuple[Any, str]], str, SearchSession]:
        choices, (metric, k_value, chosen_labels, image_value, text_value) = controls.choices(values[:n]), values[n:]
        return search(service, source_value, name, choices, metric, k_value, chosen_labels, image_value, text_value, progress)

    def on_update(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> tuple[list[tuple[Any, str]], str, SearchSession | None]:
        """Read the folder again, update the chosen engine's index, then search as asked."""
        try:
            engine, gallery = service.update(name, source_value, controls.choices(values[:n]),
                                             progress=progress_bar(progress))
        except USER_ERRORS as exc:
            raise service.user_error(exc) from exc
        image_value, text_value = values[n + 3 : n + 5]
        if not image_value and not (text_value or "").strip():
            return [], f"Index updated: **{len(engine)}** images of {service.shown(gallery.source)}.", None
        return on_search(source_value, name, *values, progress=progress)

    def on_refine(state: SearchSession, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple[Any, ...]:
        return refine(service, state, progress)

    def shown(handler: Any) -> Any:
        """The page's version: words instead of errors, plus the threshold slider and the marks."""
        def failed(message: str) -> tuple[Any, ...]:
            return [], f"**Could not search.** {message}", None, gr.update(visible=False), ""

        def with_extras(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            tiles, line, state = handler(*args, **kwargs)
            return tiles, line, state, threshold_slider(state), marks_text(state)

        return in_the_page(functools.wraps(handler)(with_extras), failed)

    inputs = [source, controls.engine, *controls.inputs, controls.metric, k, labels, image, text]
    page_outputs = [results, summary, session, threshold, marks]
    for event in (go.click, text.submit):
        event(shown(on_search), inputs, page_outputs, api_visibility="private", concurrency_limit=4,
              concurrency_id="search")
    again.click(shown(on_refine), session, page_outputs, api_visibility="private", concurrency_id="search")
    update.click(shown(on_update), inputs, page_outputs, api_visibility="private", concurrency_id="search")

    def on_select(evt: gr.SelectData) -> int:
        return int(evt.index) + 1 if isinstance(evt.index, int) else 1

    results.select(on_select, None, selected, api_visibility="private")
    for button, verdict in ((relevant, "relevant"), (irrelevant, "not relevant")):
        def on_mark(state: SearchSession, rank: float | None, verdict: str = verdict) -> tuple[SearchSession | None, str]:
            return mark(state, rank, verdict)

        button.click(on_mark, [session, selected], [session, marks], api_visibility="private")
    reset.click(start_over, session, [session, marks], api_visibility="private")

    def on_threshold(state: SearchSession, value: float) -> tuple[list[tuple[Any, str]], str]:
        return apply_threshold(service, state, value)

    threshold.release(on_threshold, [session, threshold], [results, summary], api_visibility="private")
    controls.engine.change(text_box_for, controls.engine, text, api_visibility="private")
    return image


def example_queries(config: AppConfig) -> list[list[str]]:
    """One test image per class of the start-up gallery, when it is a local folder."""
    test = Path(config.data) / "test"
    if not test.is_dir():
        return []
    from engines import list_image_files

    per_class: dict[str, str] = {}
    for path in list_image_files(test):
        per_class.setdefault(Path(path).parent.name, path)
    return [[path] for path in list(per_class.values())[:12]]
