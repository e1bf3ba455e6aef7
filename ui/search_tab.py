"""The Search tab: a query image or a sentence in, ranked gallery images out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gradio as gr

from engines import Filter, engine_info

from . import photo_filters, tags_view
from .actions.filters import filter_of
from .actions.searching import EXPLAIN_SLOTS, MAX_K, query_of, start_over, why
from .actions.searching import search as search_session
from .controls import EngineControls, example_queries, progress_bar, stop_button
from .feedback import (
    SELECTION,
    VIEW,
    Shown,
    apply_threshold,
    mark,
    refine,
    run,
    selection,
    summary,
    tiles_of,
    view,
)
from .messages import USER_ERRORS, explain_bad_input, in_the_page, only_trusted_files
from .named import Parts
from .service import SearchService
from .session import SearchSession, asked

TEXT_LABEL = "…or describe what you are looking for"
#: Phone photo endings, both cases: the button's file picker and drop take them by name.
PHONE_ENDINGS = [".heic", ".HEIC", ".heif", ".HEIF", ".avif", ".AVIF", ".jpg", ".JPG", ".jpeg", ".JPEG"]
TEXT_PLACEHOLDER = "a dog on a beach · combine: a dog + a beach - snow · weigh: 2:a dog + a beach"


def search(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str | None, k: float,
    labels: list[str] | None, image: Any, text: str | None, progress: Any = None, chosen: Filter | None = None,
    with_words: bool = False,
) -> Shown:
    """Rank ``source``'s gallery against the uploaded image and/or the sentence
    (:func:`ui.actions.searching.search`): the tiles, the summary line and the session."""
    session = search_session(service, source, name, choices, metric, k, labels, image, text, progress, chosen,
                             with_words)
    return tiles_of(service, session), summary(session, len(session.results)), session


def text_box_for(name: str) -> Any:
    """The text box as engine ``name`` can use it: typing only where the engine reads sentences.
    An engine that reads none also empties it: a sentence left in a greyed-out box would
    otherwise fail every search, and could not be cleared."""
    accepts = engine_info(name).accepts_text
    if accepts:
        return gr.update(label=TEXT_LABEL, interactive=True)
    return gr.update(label=TEXT_LABEL + " (needs a CLIP engine)", interactive=False, value="")


class SearchHooks:
    """What other tabs use of the Search tab: its query image, and a way to run its search
    after one of their events (the map's "Search with this image")."""

    def __init__(self, image: gr.Image, text: gr.Textbox, then_search: Any, tags: tags_view.TagControls,
                 cameras: gr.Dropdown) -> None:
        self.image = image
        self.text = text
        self.then_search = then_search
        #: The camera picker: the Gallery tab's "Dates and cameras" fills its choices.
        self.cameras = cameras
        #: The tag picker and the tag to teach: the Gallery tab fills their choices.
        self.tags = tags


def build(service: SearchService, controls: EngineControls, source: gr.State, labels: gr.Dropdown) -> SearchHooks:
    """The tab's components and their events (inside a ``gr.Tab``)."""
    accepts = engine_info(str(controls.engine.value)).accepts_text
    session = gr.State(None)
    selected = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            image = only_trusted_files(explain_bad_input(gr.Image(
                # image_mode=None: Gradio hands over the upload untouched (it would otherwise
                # decode and re-save it, whatever its size, before the engines' pixel budget).
                type="filepath", image_mode=None, label="Query image", sources=["upload", "clipboard", "webcam"],
                elem_id="query-image", height=280,
            ), "an image: a JPEG, PNG, GIF, BMP, TIFF, WebP, HEIC or AVIF file"), service.uploads.trusted)
            # Chromium gives .HEIC (as iPhones name files) no MIME type, so the box's image/* upload
            # refuses it; this button takes phone formats by their endings.
            phone = gr.UploadButton("Upload a phone photo (HEIC, HEIF, AVIF…)", size="sm", elem_id="phone-upload",
                                    file_types=["image", *PHONE_ENDINGS], file_count="single")
            text = gr.Textbox(
                label=TEXT_LABEL + ("" if accepts else " (needs a CLIP engine)"), interactive=accepts,
                elem_id="query-text", placeholder=TEXT_PLACEHOLDER,
                info="With an image too, both are combined: the photo, with these words.",
            )
            fuse = gr.Checkbox(False, label="…and the words the photos show (read in the Gallery tab)",
                               elem_id="with-words", container=False)
            with gr.Row():
                k = explain_bad_input(gr.Slider(1, 50, value=10, step=1, label="Results (k)"),
                                      "k (results) to be a whole number from 1 to 50")
                labels.render()
            pickers = photo_filters.build(service, source)
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
            with gr.Row():
                summary_line = gr.Markdown(elem_id="summary")
                order = gr.Radio(list(photo_filters.ORDERS), value=photo_filters.ORDERS[0], show_label=False,
                                 elem_id="results-order", container=False)
            results = gr.Gallery(label="Results", columns=5, height=520, elem_id="results", object_fit="contain")
            threshold = explain_bad_input(
                gr.Slider(0, 1, value=0, label="Score threshold", visible=False, elem_id="threshold"),
                "the threshold to be a number",
            )
            chosen = gr.Markdown(elem_id="selected")
            with gr.Row():
                relevant = gr.Button("Relevant", elem_id="mark-relevant", interactive=False, size="sm")
                irrelevant = gr.Button("Not relevant", elem_id="mark-irrelevant", interactive=False, size="sm")
                similar = gr.Button("Find similar", elem_id="find-similar", interactive=False, size="sm")
                person = gr.Button("Find this person", elem_id="find-person", interactive=False, size="sm")
                why_button = gr.Button("Why?", elem_id="why-button", interactive=False, size="sm")
                again = gr.Button("Refine", variant="primary", elem_id="refine-button", interactive=False, size="sm")
                reset = gr.Button("Start over", elem_id="start-over", interactive=False, size="sm")
            marks = gr.Markdown(elem_id="marks")
            teach_choice = tags_view.build_teach(service, session)
            with gr.Row(visible=False) as why_row:
                why_query = gr.Image(label="Query", interactive=False, height=260, elem_id="why-query")
                why_result = gr.Image(label="Result", interactive=False, height=260, elem_id="why-result")
            why_text = gr.Markdown(elem_id="why-text")
            with gr.Row():
                path = gr.Textbox(label="Selected result's file", interactive=False, buttons=["copy"],
                                  elem_id="selected-path", scale=3)
                more = gr.Button("More results", elem_id="more-results", interactive=False, scale=1)
                download = gr.DownloadButton("Results as CSV", elem_id="results-csv", interactive=False, scale=1)

    n = len(controls.options)
    # ``feedback`` names each part the tab shows (VIEW); ``Parts`` is where names meet components.
    parts = Parts(results=results, summary=summary_line, session=session, threshold=threshold, marks=marks,
                  selected=selected, chosen=chosen, path=path, relevant=relevant, irrelevant=irrelevant,
                  similar=similar, person=person, why_button=why_button, again=again, reset=reset, more=more,
                  download=download, why_row=why_row, why_text=why_text, order=order)
    assert tuple(parts.components) == VIEW
    outputs, show = parts.outputs(), parts.show

    def on_search(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> dict[Any, Any]:
        choices = controls.choices(values[:n])
        metric, k_value, chosen_labels, image_value, text_value, fuse_value, *picked = values[n:]
        found = search(service, source_value, name, choices, metric, k_value, chosen_labels, image_value,
                       text_value, progress, filter_of(*picked), bool(fuse_value))
        return show(view(service, found[2], found))

    def on_update(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> dict[Any, Any]:
        """Read the folder again, update the chosen engine's index, then search as asked."""
        try:
            engine, gallery = service.update(name, source_value, controls.choices(values[:n]),
                                             progress=progress_bar(progress))
        except USER_ERRORS as exc:
            raise service.user_error(exc) from exc
        image_value, text_value = values[n + 3 : n + 5]
        if not image_value and not (text_value or "").strip():
            line = f"Index updated: **{len(engine):,}** images of {service.shown(gallery.source)}."
            return show(view(service, None, ([], line, None)))  # type: ignore[arg-type]
        return on_search(source_value, name, *values, progress=progress)

    def on_refine(state: SearchSession, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> dict[Any, Any]:
        found = refine(service, state, progress)  # a refusal is a message; the results stay
        return show(view(service, found[2], found))

    def on_more(state: SearchSession, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> dict[Any, Any]:
        """The same search (and refining) with twice as many results."""
        if not state or not state.results:
            raise gr.Error("Search first.")
        wider = replace(state, k=min(MAX_K, state.k * 2))
        if state.rounds:
            found = refine(service, replace(wider, rounds=state.rounds - 1), progress)
        else:
            found = run(service, replace(wider, original=()), query_of(state.image, state.text), progress)
        return show(view(service, found[2], found))

    def failed(message: str) -> dict[Any, Any]:
        # The message takes the summary line; the results and marks stay (a typo must not lose them).
        return {summary_line: f"**Could not search.** {message}"}

    inputs = [source, controls.engine, *controls.inputs, controls.metric, k, labels, image, text, fuse,
              *pickers.inputs]
    for event in (go.click, text.submit):
        event(in_the_page(on_search, failed), inputs, outputs, api_visibility="private", concurrency_limit=4,
              concurrency_id="search")
    again.click(on_refine, session, outputs, api_visibility="private", concurrency_id="search")
    more.click(on_more, session, outputs, api_visibility="private", concurrency_id="search")
    update.click(in_the_page(on_update, failed), inputs, outputs, api_visibility="private", concurrency_id="search")

    def on_select(state: SearchSession | None, evt: gr.SelectData) -> dict[Any, Any]:
        rank = int(evt.index) + 1 if isinstance(evt.index, int) else None
        return show(selection(service, state, rank))

    results.select(on_select, session, parts.outputs(*SELECTION), api_visibility="private")
    for button, verdict in ((relevant, "relevant"), (irrelevant, "not relevant")):
        def on_mark(state: SearchSession, rank: int | None, verdict: str = verdict) -> dict[Any, Any]:
            marked, _ = mark(state, rank, verdict)
            return show(view(service, marked, rank=rank, keep_order=True))

        button.click(on_mark, [session, selected], outputs, api_visibility="private")

    def on_order(state: SearchSession | None, chosen: str) -> dict[Any, Any]:
        """The same results in another order (by score, or by the date each photo was taken)."""
        if not state or not state.results:
            return show(view(service, state, keep_order=True))
        return show(view(service, replace(state, results=photo_filters.ordered(service, state.results, chosen)),
                         keep_order=True))

    order.input(on_order, [session, order], outputs, api_visibility="private")

    def on_start_over(state: SearchSession | None) -> dict[Any, Any]:
        return show(view(service, start_over(state)))

    reset.click(on_start_over, session, outputs, api_visibility="private")

    def chosen_file(state: SearchSession | None, rank: int | None) -> str:
        if not state or not rank or not state.results[rank - 1].path:
            raise gr.Error("Select a result with a file first.")
        return str(state.results[rank - 1].path)

    def on_similar(state: SearchSession, rank: int | None) -> dict[Any, Any]:
        """Put the selected result in the query box, as a preview (then the search runs with it alone)."""
        return {image: service.uploads.preview(chosen_file(state, rank)), text: ""}

    def then_search(dependency: Any) -> None:
        dependency.then(in_the_page(on_search, failed), inputs, outputs, api_visibility="private",
                        concurrency_id="search")

    then_search(similar.click(on_similar, [session, selected], [image, text], api_visibility="private"))

    def on_person(state: SearchSession, rank: int | None) -> dict[Any, Any]:
        """The selected photo as the faces engine's query (its largest face): every photo of that person."""
        path = chosen_file(state, rank)
        if service.built("faces", state.source, {}) is None:
            raise gr.Error("Find the people first (People tab, or image-search faces): faces are found only when asked.")
        # The faces engine searches the preview's original.
        return {image: service.uploads.preview(path), text: "", controls.engine: "faces"}

    then_search(person.click(on_person, [session, selected], [image, text, controls.engine], api_visibility="private"))

    def on_why(state: SearchSession, rank: int | None) -> dict[Any, Any]:
        explanation, result = why(service, state, rank)
        line = (f"**Why #{result.rank}** ({state.metric} {result.score:.4g}; {explanation.method}): "
                f"{explanation.meaning}")
        if explanation.query_overlay is None:
            line += f" The query was {asked(state)}." if not state.rounds else " The query was refined with your marks."
        return {why_row: gr.update(visible=True), why_result: explanation.overlay, why_text: line,
                why_query: gr.update(value=explanation.query_overlay, visible=explanation.query_overlay is not None)}

    # Explanations (seconds of CPU each) have a queue of their own: 16 visitors asking Why?
    # made another visitor's search wait 45 s when they shared the search slots.
    why_button.click(on_why, [session, selected], [why_row, why_query, why_result, why_text],
                     api_visibility="private", concurrency_limit=EXPLAIN_SLOTS, concurrency_id="explain")

    def on_threshold(state: SearchSession, value: float) -> dict[Any, Any]:
        tiles, line = apply_threshold(service, state, value)
        return {results: tiles, summary_line: line}

    threshold.release(on_threshold, [session, threshold], [results, summary_line], api_visibility="private")
    controls.engine.change(text_box_for, controls.engine, text, api_visibility="private")
    # The box shows a small JPEG of an upload (HEIC too), not the original sent back to the browser.
    image.upload(lambda value: service.uploads.preview(value) if value else value, image, image,
                 api_visibility="private", queue=False)

    def on_phone(path: str | None) -> Any:  # the button's type is "filepath": a path or nothing
        if not path:
            raise gr.Error("Choose a photo to upload.")
        return service.uploads.preview(str(path))  # the upload folder's file: trusted, shown as a JPEG

    phone.upload(on_phone, phone, image, api_visibility="private")
    return SearchHooks(image, text, then_search, tags_view.TagControls(pickers.tags, teach_choice), pickers.cameras)
