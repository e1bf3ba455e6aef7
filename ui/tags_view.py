"""Tags in the page: name them in the Gallery tab, pick them under the query, see them on
results, and teach one from the marks of a search (engines/analysis/tags.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from engines import SearchEngine, available_engines, engine_info
from engines.analysis.tags import TagTable

from .controls import EngineControls, progress_bar
from .messages import USER_ERRORS, count, in_the_page
from .named import Parts
from .service import SearchService
from .session import SearchSession

HEADERS = ["tag", "photos", "threshold", "taught by marks"]


@dataclass
class TagControls:
    """What the Search tab offers of the tags: a picker under the query, and "Teach"."""

    picker: gr.Dropdown
    teach_choice: gr.Dropdown


def tagging_engine(service: SearchService, source: str, name: str, choices: Mapping[str, str | None],
                   progress: Any = None) -> SearchEngine:
    """The chosen engine, indexed, if it makes tags (a CLIP-family model); else a user error."""
    if not engine_info(name).accepts_text:
        raise gr.Error(f"Tags come from a CLIP-family model: choose CLIP or CLIP + Chroma, not {available_engines()[name]}.")
    try:
        engine, _, _ = service.current(name, source, choices, progress=progress_bar(progress))
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    return engine


def rows(table: TagTable | None) -> list[list[Any]]:
    if table is None:
        return []
    counts = table.counts()
    return [[rule.name, counts[rule.name], round(float(threshold), 4),
             f"{len(rule.relevant)} relevant, {len(rule.irrelevant)} not" if rule.taught else "no (the gallery's spread)"]
            for rule, threshold in zip(table.rules, table.thresholds, strict=True)]


def name_tags(service: SearchService, source: str, name: str, choices: Mapping[str, str | None], words: str,
              progress: Any = None) -> dict[str, Any]:
    """Tag the gallery's photos with ``words`` (empty: show the tags kept for this model): :func:`shown`."""
    engine = tagging_engine(service, source, name, choices, progress)
    try:
        table = engine.tag(words if words.strip() else None)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    return shown(table, len(engine))


def shown(table: TagTable, photos: int) -> dict[str, Any]:
    """The tags, by name: ``table`` (rows), ``said`` (a line), the ``picker``'s choices with their
    counts and the ``teach_choice`` list's."""
    names = list(table.names)
    if not names:
        line = "No tags yet: type some words, comma-separated (beach, snow, dog, receipt, screenshot)."
    else:
        line = (f"{count(len(names), 'tag')} over {count(photos, 'photo')}. A photo carries a tag when it matches "
                "the words far better than this gallery's typical photo; mark search results and press **Teach** "
                "to move a tag's threshold.")
    counts = table.counts()
    picks = [(f"{name} ({counts[name]:,})", name) for name in names]
    return {"table": rows(table), "said": line, "picker": gr.update(choices=picks),
            "teach_choice": gr.update(choices=names, value=names[0] if names else None)}


def kept_tags(service: SearchService, source: str, name: str, choices: Mapping[str, str | None]) -> dict[str, Any]:
    """The tags kept for the engine's index when a page opens (or the engine changes): shown
    (:func:`shown`) where that index is built already, nothing changed otherwise; nothing is built for it."""
    engine = service.built(name, source, choices) if engine_info(name).accepts_text else None
    table = engine.tag_table() if engine is not None else None
    if engine is None or table is None or not table.names:
        return {}
    return shown(table, len(engine))


def tag_notes(service: SearchService, session: SearchSession) -> dict[str, str]:
    """Each result's tags, by record, for its caption (nothing when the engine has none)."""
    engine = service.built(session.name, session.source, session.choices)
    table = engine.tag_table() if engine is not None else None
    if table is None:
        return {}
    found = {r.record: ", ".join(table.tags_of(r.record)) for r in session.results if r.record}
    return {record: tags for record, tags in found.items() if tags}


def teach(service: SearchService, session: SearchSession | None, tag: str | None) -> tuple[str, list[list[Any]]]:
    """Move ``tag``'s threshold with the session's marks: (a line saying what changed, the table rows)."""
    if not session or not (session.relevant or session.irrelevant):
        raise gr.Error("Mark results as relevant or not relevant first, then teach a tag with them.")
    if not tag:
        raise gr.Error("Choose the tag these marks are about (name tags in the Gallery tab).")
    engine = tagging_engine(service, session.source, session.name, session.choices)
    try:
        before = engine.tag_table()
        after = engine.teach_tag(tag, session.relevant, session.irrelevant)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    column = [n.casefold() for n in after.names].index(tag.strip().casefold())
    was = before.counts().get(after.names[column]) if before is not None else None
    now = after.counts()[after.names[column]]
    rule = after.rules[column]
    return (f"**{rule.name}**: threshold {float(after.thresholds[column]):.4f}, taught by "
            f"{count(len(rule.relevant), 'relevant mark')} and {count(len(rule.irrelevant), 'not-relevant mark')}; "
            f"{count(now, 'photo')} carry it" + (f" ({was:,} before)." if was is not None else ".")), rows(after)


def build_gallery_tags(service: SearchService, controls: EngineControls, source: gr.State,
                       search: TagControls, page: gr.Blocks) -> None:
    """The Gallery tab's tags: the user's words, the table of tags, and the pickers they fill."""
    gr.Markdown("### Tags\nYour own words, scored against every photo by the CLIP model; then pick them under "
                "the query to keep only photos that carry them.")
    with gr.Row():
        words = gr.Textbox(label="Tags (comma-separated)", placeholder="beach, snow, dog, receipt, screenshot",
                           scale=4, elem_id="tag-words")
        button = gr.Button("Tag the photos", scale=1, elem_id="tag-button")
    said = gr.Markdown(elem_id="tag-status")
    table = gr.Dataframe(headers=HEADERS, label="Tags", interactive=False, elem_id="tag-table")
    n = len(controls.options)

    parts = Parts(table=table, said=said, picker=search.picker, teach_choice=search.teach_choice)

    def on_tag(source_value: str, name: str, *values: Any,
               progress: gr.Progress = gr.Progress(track_tqdm=True)) -> dict[Any, Any]:
        return parts.show(name_tags(service, source_value, name, controls.choices(values[:n]), values[n] or "",
                                    progress))

    def failed(message: str) -> dict[Any, Any]:
        return parts.show({"table": [], "said": f"**Could not tag the photos.** {message}"})

    outputs = parts.outputs()
    button.click(in_the_page(on_tag, failed), [source, controls.engine, *controls.inputs, words],
                 outputs, api_visibility="private", concurrency_limit=1, concurrency_id="build_index")

    def on_open(source_value: str, name: str, *values: Any) -> dict[Any, Any]:
        # Nothing to show changes nothing (an empty dict would read as one value to Gradio).
        return parts.show(kept_tags(service, source_value, name, controls.choices(values[:n])) or {"said": gr.skip()})

    # A new page (another browser tab, a reload) shows the tags an index already has.
    for trigger in (page.load, controls.engine.change):
        trigger(in_the_page(on_open, lambda message: parts.show({"said": gr.skip()})),
                [source, controls.engine, *controls.inputs],
                outputs, api_visibility="private")


def build_teach(service: SearchService, session: gr.State) -> gr.Dropdown:
    """Under the marks: teach a tag with them. Returns the tag choice (filled by the Gallery tab)."""
    with gr.Row():
        choice = gr.Dropdown([], label="Teach a tag with these marks", scale=3, elem_id="teach-tag")
        button = gr.Button("Teach", size="sm", scale=1, elem_id="teach-button")
    said = gr.Markdown(elem_id="teach-status")

    def on_teach(state: SearchSession | None, tag: str | None) -> str:
        return teach(service, state, tag)[0]

    button.click(in_the_page(on_teach, lambda message: f"**Could not teach the tag.** {message}"), [session, choice],
                 said, api_visibility="private", concurrency_id="search")
    return choice
