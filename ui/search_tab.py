"""The Search tab: a query image or a sentence in, ranked gallery images out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from engines import Text, engine_info

from .config import AppConfig
from .controls import EngineControls
from .images import result_tile
from .messages import USER_ERRORS, in_the_page, user_error
from .service import SearchService

TEXT_LABEL = "…or describe what you are looking for"


def search(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str, k: float,
    labels: list[str] | None, image: str | None, text: str | None, progress: Any = None,
) -> tuple[list[tuple[Any, str]], str]:
    """Rank ``source``'s gallery against the uploaded image, else the sentence.

    ``image`` is the path Gradio saved the upload under; ``text`` is always a sentence,
    never opened as a file, whatever it says.
    """
    sentence = (text or "").strip()
    if not image and not sentence:
        raise gr.Error("Upload or pick a query image, or type a sentence (CLIP engines).")
    try:
        query = Path(image) if image else Text(sentence)
        gallery = service.gallery(source)
        if progress is not None:
            progress(0, desc="Preparing the index")
        engine = service.engine(name, gallery, choices)
        started = time.perf_counter()
        results = engine.search(query, k=int(k), metric=metric, labels=labels or None)
        elapsed = (time.perf_counter() - started) * 1000
    except USER_ERRORS as exc:
        raise user_error(exc) from exc
    if image and sentence:
        gr.Info("Searched by the image; clear it to search by the text.")
    better = "higher is better" if metric in engine.higher_is_better else "lower is better"
    summary = f"**{len(results)} results** in {elapsed:.1f} ms from {len(engine)} images · {metric}: {better}"
    return [result_tile(r, gallery, service.may_serve) for r in results], summary


def text_box_for(name: str) -> Any:
    """The text box as engine ``name`` can use it: typing only where the engine reads sentences."""
    accepts = engine_info(name).accepts_text
    return gr.update(label=TEXT_LABEL + ("" if accepts else " (needs a CLIP engine)"), interactive=accepts)


def refuse_unreadable_uploads(component: gr.Image) -> gr.Image:
    """Make an unreadable upload a clear message instead of a stack trace.

    Gradio opens uploads with Pillow before the handler runs. This wraps the one component
    instance rather than subclassing: Gradio writes a ``.pyi`` stub beside the source file
    of every component subclass, which must not happen in a deployed app's folder.
    """
    original = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return original(payload)
        except Exception as exc:
            raise gr.Error(
                f"Could not read the uploaded file as an image ({type(exc).__name__}: {exc}). "
                "Upload a JPEG, PNG, GIF, BMP, TIFF or WebP image."
            ) from exc

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def build(service: SearchService, controls: EngineControls, source: gr.State, labels: gr.Dropdown) -> None:
    """The tab's components and their events (inside a ``gr.Tab``)."""
    accepts = engine_info(str(controls.engine.value)).accepts_text
    with gr.Row():
        with gr.Column(scale=1):
            image = refuse_unreadable_uploads(gr.Image(
                # image_mode=None: Gradio hands over the upload untouched (it would otherwise
                # decode and re-save it, whatever its size, before the engines' pixel budget).
                type="filepath", image_mode=None, label="Query image", sources=["upload", "clipboard", "webcam"],
                elem_id="query-image", height=280,
            ))
            text = gr.Textbox(
                label=TEXT_LABEL + ("" if accepts else " (needs a CLIP engine)"), interactive=accepts,
                elem_id="query-text",
            )
            with gr.Row():
                k = gr.Slider(1, 50, value=10, step=1, label="Results (k)")
                labels.render()
            go = gr.Button("Search", variant="primary", elem_id="search-button")
            examples = example_queries(service.config)
            if examples:
                gr.Examples(examples, inputs=[image], label="Example queries (test split)")
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="summary")
            results = gr.Gallery(label="Results", columns=5, height=560, elem_id="results", object_fit="contain")

    n = len(controls.options)

    def on_search(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> tuple[list[tuple[Any, str]], str]:
        choices, (metric, k_value, chosen_labels, image_value, text_value) = controls.choices(values[:n]), values[n:]
        return search(service, source_value, name, choices, metric, k_value, chosen_labels, image_value, text_value, progress)

    def failed(message: str) -> tuple[list[tuple[Any, str]], str]:
        return [], f"**Could not search.** {message}"

    inputs, outputs = [source, controls.engine, *controls.inputs, controls.metric, k, labels, image, text], [results, summary]
    shown = in_the_page(on_search, failed)
    for event in (go.click, text.submit):
        event(shown, inputs, outputs, api_visibility="private", concurrency_limit=4, concurrency_id="search")
    # The API's /search raises its errors, as a program expects; it shares the page's queue.
    gr.Button(visible=False).click(on_search, inputs, outputs, api_name="search", concurrency_id="search")
    controls.engine.change(text_box_for, controls.engine, text, api_visibility="private")


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
