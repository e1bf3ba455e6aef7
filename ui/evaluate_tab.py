"""The Evaluate tab: every test image queries the train split; P@k, mAP, a plot and a CSV."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from typing import Any

import gradio as gr

from engines import available_engines, engine_info
from engines.evaluate import EvaluationRow, evaluate, evaluation_queries
from engines.registry import uses_a_model

from .controls import EngineControls, engine_choices
from .downloads import write_csv
from .messages import USER_ERRORS, describe, in_the_page
from .service import SearchService

#: The plot's line colours, in the order of the runs (Tableau 10: distinct, colour-blind friendly).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
#: The precision plot runs k = 1 .. PLOT_MAX_K.
PLOT_MAX_K = 20


def parse_ks(text: str | None) -> list[int]:
    """k values typed as "1, 5 10"; a clear error for anything else."""
    try:
        ks = sorted({int(k) for k in re.split(r"[,\s]+", text or "") if k})
    except ValueError:
        raise gr.Error(f"Expected k values as comma-separated whole numbers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise gr.Error("Expected at least one k of 1 or more, e.g. 1,5,10")
    return ks


def run_evaluation(
    service: SearchService, source: str, names: list[str], choices: dict[str, str | None], metrics: list[str],
    ks_text: str, progress: Any = None,
) -> tuple[Any, Any, str, str]:
    """(table, plot, CSV path, status) for engines ``names`` on ``source``'s gallery.

    An engine that fails (a model that cannot load, a database that is down) is listed in
    the status; the rows of the engines that worked are kept.
    """
    import pandas as pd

    ks = parse_ks(ks_text)
    if not names:
        raise gr.Error("Choose at least one engine to evaluate.")
    try:
        gallery = service.gallery(source)
        queries, note = evaluation_queries(gallery)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    # A leave-one-out ranking holds every image but the query itself.
    ranked = len(gallery["train"]) - (1 if queries is None else 0)
    notes = [note]
    if ks[-1] > ranked:
        notes.append(f"k above {ranked} (the images each query ranks) was capped to {ranked}")
        ks = sorted({min(k, ranked) for k in ks})
    # The plot runs to the largest k asked for (at most PLOT_MAX_K), not past it.
    plot_ks = list(range(1, min(PLOT_MAX_K, ranked, max(ks)) + 1))
    rows: list[EvaluationRow] = []
    failures: list[str] = []
    for name in names:
        title = available_engines()[name]
        try:
            ready = service.built(name, source, choices)  # built by an earlier request: reused, said so
            started = time.perf_counter()
            engine = service.engine(name, gallery, choices)
            built = time.perf_counter() - started
            computed = engine.last_computed if ready is None else 0
            chosen = [m for m in (metrics or engine.metrics) if m in engine.metrics]
            if not chosen:
                failures.append(f"{title} offers none of the chosen metrics")
                continue
            used = service.choices_for(name, choices)
            if uses_a_model(name):  # a learned engine: its row names the model that answered
                model = str(used.get("model") or service.deployment.model)
                # a model folder by its name: the server's folders are not the visitor's business
                used = {**used, "model": os.path.basename(model.rstrip("/")) if os.path.isdir(model) else model}
            found = evaluate(
                engine, gallery["train"], queries, metrics=chosen, ks=sorted(set(ks) | set(plot_ks)),
                settings=",".join(f"{key}={value}" for key, value in used.items()), progress=progress is not None,
            )
            # The index this run built (or found built) is the one evaluated: its time, not the re-check's.
            rows += [replace(row, index_seconds=built, computed=computed) if computed else row for row in found]
        except USER_ERRORS as exc:
            failures.append(f"{title} failed: {describe(exc)}")
    if not rows:
        raise gr.Error("No engine could be evaluated. " + " ".join(failures))
    header = ["engine", "metric", "queries", *[f"P@{k}" for k in ks], "mAP", "index s", "query ms"]
    table = [
        [r.engine + (f" ({r.settings})" if r.settings else ""), r.metric, r.queries,
         *[round(r.precision[k], 4) for k in ks], round(r.mean_ap, 4),
         f"{r.index_seconds:.2f}" + (" (reused)" if r.computed == 0 else ""), round(r.median_query_ms, 2)]
        for r in rows
    ]
    points = pd.DataFrame(
        [{"k": k, "precision": r.precision[k], "run": " ".join(filter(None, [r.engine, r.settings, r.metric]))}
         for r in rows for k in plot_ks]
    )
    top = float(points["precision"].max())
    # The colours and legend are this run's: named per run, so a later run with other or fewer
    # lines never shows the colours (or the names) of an earlier one.
    runs = list(dict.fromkeys(points["run"]))
    colours = {run: PALETTE[n % len(PALETTE)] for n, run in enumerate(runs)}
    plot = gr.update(value=points, color_map=colours, colors_in_legend=runs, x_lim=[1, plot_ks[-1]],
                     y_lim=[0, min(1.0, round(top * 1.15 + 0.005, 2))])
    csv_path = write_csv(service.scratch_file("evaluation-", ".csv"), header, table)
    status = f"Evaluated {service.shown(gallery.source)}: " + "; ".join(notes) + "." + "".join(f"\n\n**{f}**" for f in failures)
    return pd.DataFrame(table, columns=header), plot, csv_path, status


def build(service: SearchService, controls: EngineControls, source: gr.State) -> None:
    """The tab's components and events (inside a ``gr.Tab``)."""
    gr.Markdown(
        "Every test image queries the database (each database image queries the others where there is no "
        "test split); relevant = same class; AP is over the whole ranking. The engines, metrics and k are "
        "chosen here; the pixel features come from the row at the top."
    )
    first = next(iter(available_engines()))
    with gr.Row():
        engines = gr.CheckboxGroup(engine_choices(), value=[first], label="Engines")
        all_metrics = list(dict.fromkeys(m for n in available_engines() for m in engine_info(n).metrics))
        metrics = gr.CheckboxGroup(all_metrics, value=[], label="Metrics (none chosen: all of each engine's)")
        ks = gr.Textbox("1,5,10", label="k for P@k")
    button = gr.Button("Run evaluation", variant="primary", elem_id="eval-button")
    status = gr.Markdown()
    table = gr.Dataframe(label="Precision at k and mAP", interactive=False, elem_id="eval-table")
    # k is a count: whole-number ticks ("d"); the y range is fitted to the figures after each run.
    plot = gr.LinePlot(x="k", y="precision", color="run", label="Precision at k", y_lim=[0, 1], x_axis_format="d")
    csv_file = gr.File(label="Download the table (CSV)")

    n = len(controls.options)

    def on_evaluate(
        source_value: str, names: list[str], *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> tuple[Any, Any, str, str]:
        choices, (chosen_metrics, ks_text) = controls.choices(values[:n]), values[n:]
        return run_evaluation(service, source_value, names, choices, chosen_metrics, ks_text, progress)

    def failed(message: str) -> tuple[Any, Any, Any, str]:
        return None, None, None, f"**Could not evaluate.** {message}"

    inputs, outputs = [source, engines, *controls.inputs, metrics, ks], [table, plot, csv_file, status]
    button.click(in_the_page(on_evaluate, failed), inputs, outputs, api_visibility="private",
                 concurrency_limit=1, concurrency_id="evaluate")
