"""The Duplicates tab: groups of copies in the gallery, as the chosen engine sees them.

It lists; it never deletes or moves a file. The threshold starts at the engine's default
for the metric and follows the slider once the user moves it.
"""

from __future__ import annotations

import csv
from typing import Any

import gradio as gr

from engines import SearchEngine, available_engines
from engines.gallery import Gallery
from engines.metrics import higher_is_better
from engines.results import DuplicateGroup, printable

from .controls import EngineControls, progress_bar
from .images import caption
from .messages import USER_ERRORS, count, explain_bad_input, in_the_page, number_from
from .service import SearchService

#: Groups shown as thumbnails (all of them are in the table and the CSV).
SHOWN_GROUPS = 60
#: Thumbnails per group in the page.
SHOWN_MEMBERS = 8


def groups_of(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str,
    threshold: float | None, progress: Any = None,
) -> tuple[list[DuplicateGroup], Gallery, SearchEngine, float, str]:
    """(groups, gallery, engine, threshold used, a note on folder changes) of the duplicates in
    ``source``; ``threshold`` ``None`` uses the engine's default for ``metric``."""
    try:
        engine, gallery, note = service.current(name, source, choices, progress=progress_bar(progress))
        used = engine.duplicate_threshold(metric) if threshold is None else number_from(threshold, "the threshold")
        groups = service.in_background(lambda: engine.duplicates(threshold=used, metric=metric))
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    return groups, gallery, engine, used, note


def find(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str,
    threshold: float | None, progress: Any = None,
) -> tuple[list[tuple[Any, str]], str, list[list[Any]], str, float]:
    """(thumbnails, summary, table rows, CSV path, threshold used) of the duplicates in ``source``."""
    groups, gallery, engine, used, note = groups_of(service, source, name, choices, metric, threshold, progress)
    tiles: list[tuple[Any, str]] = []
    for number, group in enumerate(groups[:SHOWN_GROUPS], start=1):
        for member in group.members[:SHOWN_MEMBERS]:
            tile, why = service.picture(member, gallery)
            text = caption(member, why)  # place, label, score to the first, file
            tiles.append((tile, f"group {number} · {group.kind} · {len(group.members)} files · {text}"))
    rows = [
        [number, group.kind, len(group.members), round(group.score, 4),
         "\n".join(_where(service, m.path, m.position) for m in group.members)]
        for number, group in enumerate(groups, start=1)
    ]
    direction = "similarity at least" if higher_is_better(metric) else "distance at most"
    line = summary_line(groups, len(engine), available_engines()[name], metric, direction, used)
    return tiles, line + (f"\n\n**{note}.**" if note else ""), rows, write_csv(service, groups), used


def summary_line(groups: list[DuplicateGroup], indexed: int, title: str, metric: str, direction: str, used: float) -> str:
    exact = [g for g in groups if g.kind == "exact"]
    near = [g for g in groups if g.kind == "near"]
    files = {m.path or m.position for g in groups for m in g.members}
    in_groups = "1 file is" if len(files) == 1 else f"{len(files):,} files are"
    text = (
        f"**{count(len(exact), 'exact group')}** ({count(sum(len(g.members) for g in exact), 'file')}) and "
        f"**{count(len(near), 'near group')}** ({count(sum(len(g.members) for g in near), 'file')}) among "
        f"{count(indexed, 'image')} with {title}; near: {metric} {direction} {used:.4g}. {in_groups} in a group. "
        "Nothing was deleted or moved."
    )
    if len(groups) > SHOWN_GROUPS:
        text += f" The first {SHOWN_GROUPS} groups are shown; the table and the CSV hold all {len(groups)}."
    return text


def _where(service: SearchService, path: str | None, position: int) -> str:
    return service.shown(path) if path is not None else f"item #{position}"


def write_csv(service: SearchService, groups: list[DuplicateGroup]) -> str:
    """The groups as CSV (one row per file, full paths unless the app is public), in a
    scratch file the service removes again."""
    path = service.scratch_file("duplicates-", ".csv")
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["group", "kind", "size", "group_score", "path", "label", "score_to_first"])
        for number, group in enumerate(groups, start=1):
            for member in group.members:
                writer.writerow([number, group.kind, len(group.members), f"{group.score:.6g}",
                                 _where(service, member.path, member.position), printable(member.label),
                                 f"{member.score:.6g}"])
    return path


def threshold_slider(metric: str, higher_is_better: bool, used: float) -> Any:
    """The slider fitted to the metric: similarities between 0 and 1, distances up to 3x the value used."""
    if higher_is_better:
        return gr.update(minimum=0.5, maximum=1.0, value=used, step=0.001, visible=True,
                         label=f"Threshold: {metric} similarity at least")
    top = max(used * 3, 1e-3)
    return gr.update(minimum=0.0, maximum=top, value=used, step=top / 300, visible=True,
                     label=f"Threshold: {metric} distance at most")


def build(service: SearchService, controls: EngineControls, source: gr.State) -> None:
    """The tab's components and events (inside a ``gr.Tab``)."""
    gr.Markdown(
        "Copies in the gallery: **exact** (the same file, or the same pixels in another format) and **near** "
        "(resized, re-encoded, cropped, brighter). Every two images of a near group are within the threshold. "
        "The app only lists them; it deletes nothing. The Pixels engine's *phash* features are made for this."
    )
    with gr.Row():
        go = gr.Button("Find duplicates", variant="primary", elem_id="duplicates-button", scale=1)
        threshold = explain_bad_input(
            gr.Slider(0, 1, value=0, label="Threshold", visible=False, elem_id="duplicates-threshold", scale=3),
            "the threshold to be a number",
        )
    # What the slider was last fitted to: a different engine, option or metric starts at its default again.
    fitted = gr.State(None)
    summary = gr.Markdown(elem_id="duplicates-summary")
    thumbs = gr.Gallery(label="Groups", columns=8, height=420, elem_id="duplicates-gallery", object_fit="contain")
    table = gr.Dataframe(headers=["group", "kind", "files", "worst pair", "paths"], label="All groups",
                         column_widths=["8%", "8%", "8%", "10%", "66%"],
                         interactive=False, wrap=True)
    download = gr.File(label="Groups as CSV (full paths)")
    n = len(controls.options)

    def on_find(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> tuple[Any, ...]:
        choices, (metric, value, was) = controls.choices(values[:n]), values[n:]
        setting = [name, sorted(choices.items()), metric]
        chosen = float(value) if was == setting and value is not None else None
        tiles, line, rows, path, used = find(service, source_value, name, choices, metric, chosen, progress)
        higher = higher_is_better(metric)
        return tiles, line, rows, path, threshold_slider(metric, higher, used), setting

    def failed(message: str) -> tuple[Any, ...]:
        return [], f"**Could not find duplicates.** {message}", [], None, gr.update(), None

    inputs = [source, controls.engine, *controls.inputs, controls.metric, threshold, fitted]
    outputs = [thumbs, summary, table, download, threshold, fitted]
    go.click(in_the_page(on_find, failed), inputs, outputs, api_visibility="private",
             concurrency_limit=1, concurrency_id="duplicates")
    threshold.release(in_the_page(on_find, failed), inputs, outputs, api_visibility="private",
                      concurrency_limit=1, concurrency_id="duplicates")
