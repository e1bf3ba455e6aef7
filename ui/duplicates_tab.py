"""The Duplicates tab: groups of copies in the gallery, as the chosen engine sees them.

It lists; it never deletes or moves a file. The threshold starts at the engine's default
for the metric and follows the slider once the user moves it.
"""

from __future__ import annotations

import math
import os
from typing import Any

import gradio as gr

from engines import available_engines
from engines.analysis.keeper import keeper
from engines.analysis.verify import opencv_available
from engines.metrics import higher_is_better
from engines.results import DuplicateGroup, printable

from .actions.duplicates import find_groups
from .controls import EngineControls
from .downloads import keep_one_script, write_csv
from .feedback import nice_step
from .images import caption
from .messages import count, explain_bad_input, in_the_page
from .named import Parts
from .service import SearchService

#: Groups shown as thumbnails (all of them are in the table and the CSV).
SHOWN_GROUPS = 60
#: Thumbnails per group in the page.
SHOWN_MEMBERS = 8


def find(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str,
    threshold: float | None, progress: Any = None, verify: bool = True,
) -> dict[str, Any]:
    """What the tab shows of the duplicates in ``source``, by name: ``thumbs``, ``summary``,
    ``table`` (rows), ``download`` (the CSV), ``threshold`` (the slider fitted to the threshold
    used) and ``found`` (the groups, for Keep one)."""
    found = find_groups(service, source, name, choices, metric, threshold, progress, verify)
    groups, gallery, engine, used, note = found.groups, found.gallery, found.engine, found.threshold, found.note
    tiles: list[tuple[Any, str]] = []
    for number, group in enumerate(groups[:SHOWN_GROUPS], start=1):
        regions = group.regions or (None,) * len(group.members)
        edits = group.edits or ("",) * len(group.members)
        for at, member in enumerate(group.members[:SHOWN_MEMBERS]):
            tile, why = service.picture(member, gallery)
            region = regions[at]
            if isinstance(tile, str) and region is not None:
                tile = service.thumbnails.outlined(tile, region)  # the part that matched the group's first
            text = caption(member, why)  # place, label, score to the first, file
            how = (" · the copy to keep" if at == 0 else f" · {edits[at]}") if group.edits else ""
            tiles.append((tile, f"group {number} · {group.kind} · {len(group.members)} files{how} · {text}"))
    rows = [
        [number, group.kind, len(group.members), round(group.score, 4), group.decided,
         "\n".join(_where(service, m.path, m.position) for m in group.members)]
        for number, group in enumerate(groups, start=1)
    ]
    direction = "similarity at least" if higher_is_better(metric) else "distance at most"
    line = summary_line(groups, len(engine), available_engines()[name], metric, direction, used)
    return {"thumbs": tiles, "summary": line + (f"\n\n**{note}.**" if note else ""), "table": rows,
            "download": groups_csv(service, groups), "threshold": threshold_slider(metric, higher_is_better(metric), used),
            "found": groups}


def keep_one(service: SearchService, groups: list[DuplicateGroup] | None, folder: str,
             source: str | None = None) -> dict[str, str]:
    """Per group, the file to keep (most pixels, then oldest) and the others: a CSV (``plan_csv``),
    a line (``plan_line``) and a bash script (``plan_script``) that moves the others into ``folder`` (the user runs it; the app moves nothing).

    A file kept by any group is never moved and each other file is moved once (a file can
    be in an exact and a near group). ``folder`` is made absolute against the gallery folder
    (``source``); on a public app every path is relative to the gallery folder instead.
    """
    if not groups:
        raise gr.Error("Find duplicates first.")
    name = (folder or "").strip() or "duplicates-to-review"
    if "\x00" in name or "\n" in name or "\r" in name:
        raise gr.Error("Expected a folder name without line breaks, got one with them.")
    base = os.path.abspath(source) if source and os.path.isdir(source) else None
    relative = service.config.public and base is not None
    target = name if relative else os.path.join(base or os.getcwd(), os.path.expanduser(name))

    def written(path: str) -> str:
        return os.path.relpath(path, base) if relative and base is not None else os.path.abspath(path)

    def sub_folder(path: str) -> str:
        inside = base is not None and os.path.abspath(path).startswith(base.rstrip(os.sep) + os.sep)
        return os.path.relpath(os.path.dirname(os.path.abspath(path)), base) if inside and base else "."

    keepers = [keeper(group) for group in groups]
    kept = {group.members[at].path for group, at in zip(groups, keepers, strict=True)}
    planned: set[str] = set()
    rows, moves = [], []
    for number, (group, at_kept) in enumerate(zip(groups, keepers, strict=True), start=1):
        keep = group.members[at_kept]
        for member in group.members:
            if member is keep or member.path is None or member.path in kept or member.path in planned:
                continue
            planned.add(member.path)
            moves.append((written(member.path), sub_folder(member.path)))
            keep_where = written(keep.path) if keep.path else f"item #{keep.position}"
            rows.append([number, group.kind, printable(keep_where), printable(moves[-1][0])])
    table = write_csv(service.scratch_file("keep-one-", ".csv"), ["group", "kind", "keep", "move"], rows)
    script = service.scratch_file("move-the-others-", ".sh")
    with open(script, "wb") as sh:
        sh.write(keep_one_script(moves, target, relative=relative))
    os.chmod(script, 0o755)
    line = (f"Keep one per group: **{count(len(groups), 'group')}**, {count(len(moves), 'file')} to move into "
            f"`{printable(target)}` by the script (review the CSV first; the app itself moves nothing).")
    return {"plan_csv": table, "plan_script": script, "plan_line": line}


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


def groups_csv(service: SearchService, groups: list[DuplicateGroup]) -> str:
    """The groups as CSV (one row per file, full paths unless the app is public), in a
    scratch file the service removes again."""
    rows = (
        [number, group.kind, len(group.members), f"{group.score:.6g}", _where(service, member.path, member.position),
         printable(member.label), f"{member.score:.6g}"]
        for number, group in enumerate(groups, start=1) for member in group.members
    )
    return write_csv(service.scratch_file("duplicates-", ".csv"),
                     ["group", "kind", "size", "group_score", "path", "label", "score_to_first"], rows)


def threshold_slider(metric: str, higher_is_better: bool, used: float) -> Any:
    """The slider fitted to the metric: similarities between 0 and 1, distances up to 3x the value used."""
    if higher_is_better:
        return gr.update(minimum=0.5, maximum=1.0, value=used, step=0.001, visible=True,
                         label=f"Threshold: {metric} similarity at least")
    # A round step (1, 2 or 5 times a power of ten) and ends on it: the box shows 0.96, not 0.9599999.
    step = nice_step(max(used * 3, 1e-3) / 300)
    digits = max(0, -math.floor(math.log10(step)))
    step = round(step, digits)
    top = round(math.ceil(max(used * 3, 1e-3) / step) * step, digits)
    return gr.update(minimum=0.0, maximum=top, value=round(used, digits + 1), step=step, visible=True,
                     label=f"Threshold: {metric} distance at most")


def build(service: SearchService, controls: EngineControls, source: gr.State) -> None:
    """The tab's components and events (inside a ``gr.Tab``)."""
    gr.Markdown(
        "Copies in the gallery: **exact** (the same file, or the same pixels in another format) and **near** "
        "(resized, re-encoded, cropped, brighter). Confirmed, every two images of a near group are the same photo "
        "by their keypoints and one geometry (candidates from a loose threshold); unconfirmed, every two are "
        "within the threshold. "
        "The app only lists them; it deletes nothing. The Pixels engine's *phash* features are made for this."
    )
    with gr.Row():
        go = gr.Button("Find duplicates", variant="primary", elem_id="duplicates-button", scale=1)
        verify = gr.Checkbox(value=opencv_available(), label="Confirm near copies by their features (same photo, "
                             "edited; not just alike)", interactive=opencv_available(), elem_id="duplicates-verify",
                             scale=2)
        threshold = explain_bad_input(
            gr.Slider(0, 1, value=0, label="Threshold", visible=False, elem_id="duplicates-threshold", scale=3),
            "the threshold to be a number",
        )
    # What the slider was last fitted to: a different engine, option or metric starts at its default again.
    fitted = gr.State(None)
    summary = gr.Markdown(elem_id="duplicates-summary")
    thumbs = gr.Gallery(label="Groups", columns=8, height=420, elem_id="duplicates-gallery", object_fit="contain")
    table = gr.Dataframe(headers=["group", "kind", "files", "worst pair", "decided by", "paths"], label="All groups",
                         column_widths=["7%", "7%", "6%", "9%", "21%", "50%"],
                         interactive=False, wrap=True)
    download = gr.File(label="Groups as CSV (full paths)")
    gr.Markdown("**Keep one per group**: the file with the most pixels (then the oldest) is kept; the others "
                "can be moved to a folder you name by a script you download and run yourself.")
    with gr.Row():
        folder = gr.Textbox(label="Move the others into this folder", value="duplicates-to-review", scale=3,
                            elem_id="keep-one-folder")
        plan = gr.Button("Keep one: CSV and script", elem_id="keep-one-button", scale=1)
    plan_line = gr.Markdown(elem_id="keep-one-summary")
    with gr.Row():
        plan_csv = gr.File(label="Keep and move, as CSV", elem_id="keep-one-csv")
        plan_script = gr.File(label="The script that moves the others", elem_id="keep-one-script")
    found = gr.State(None)
    parts = Parts(thumbs=thumbs, summary=summary, table=table, download=download, threshold=threshold, fitted=fitted,
                  found=found, plan_csv=plan_csv, plan_script=plan_script, plan_line=plan_line)
    n = len(controls.options)

    def on_find(
        source_value: str, name: str, *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> dict[Any, Any]:
        choices, (metric, value, was, checked) = controls.choices(values[:n]), values[n:]
        setting = [name, sorted(choices.items()), metric, bool(checked)]
        chosen = float(value) if was == setting and value is not None else None
        shown = find(service, source_value, name, choices, metric, chosen, progress, bool(checked))
        return parts.show({**shown, "fitted": setting})

    def failed(message: str) -> dict[Any, Any]:
        # The groups found before go with their thumbnails: Keep one never plans on groups not shown.
        return parts.show({"thumbs": [], "summary": f"**Could not find duplicates.** {message}", "table": [],
                           "download": None, "found": None})

    def on_plan(groups: list[DuplicateGroup] | None, target: str, source_value: str) -> dict[Any, Any]:
        return parts.show(keep_one(service, groups, target, source_value))

    plan.click(on_plan, [found, folder, source], parts.outputs("plan_csv", "plan_script", "plan_line"),
               api_visibility="private")
    inputs = [source, controls.engine, *controls.inputs, controls.metric, threshold, fitted, verify]
    outputs = parts.outputs("thumbs", "summary", "table", "download", "threshold", "fitted", "found")
    go.click(in_the_page(on_find, failed), inputs, outputs, api_visibility="private",
             concurrency_limit=1, concurrency_id="duplicates")
    threshold.release(in_the_page(on_find, failed), inputs, outputs, api_visibility="private",
                      concurrency_limit=1, concurrency_id="duplicates")
