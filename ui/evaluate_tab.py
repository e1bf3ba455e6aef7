"""The Evaluate tab: every test image queries the train split; P@k, mAP, a plot and a CSV."""

from __future__ import annotations

import csv
import os
import re
import tempfile
from typing import Any

import gradio as gr

from engines import available_engines, engine_info
from engines.evaluate import EvaluationRow, evaluate, evaluation_queries

from .controls import EngineControls, engine_choices
from .messages import USER_ERRORS, user_error
from .service import SearchService

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
    """(table, plot data, CSV path, status) for engines ``names`` on ``source``'s gallery."""
    import pandas as pd

    ks = parse_ks(ks_text)
    if not names:
        raise gr.Error("Choose at least one engine to evaluate.")
    rows: list[EvaluationRow] = []
    try:
        gallery = service.gallery(source)
        queries, note = evaluation_queries(gallery)
        for name in names:
            engine = service.engine(name, gallery, choices)
            chosen = [m for m in (metrics or engine.metrics) if m in engine.metrics]
            if not chosen:
                gr.Warning(f"{available_engines()[name]} supports none of the chosen metrics; skipped.")
                continue
            used = service.choices_for(name, choices)
            rows += evaluate(
                engine, gallery["train"], queries, metrics=chosen,
                ks=sorted(set(ks) | set(range(1, PLOT_MAX_K + 1))),
                settings=",".join(f"{key}={value}" for key, value in used.items()),
            )
    except USER_ERRORS as exc:
        raise user_error(exc) from exc
    header = ["engine", "metric", "queries", *[f"P@{k}" for k in ks], "mAP", "index s", "query ms"]
    table = [
        [r.engine + (f" ({r.settings})" if r.settings else ""), r.metric, r.queries,
         *[round(r.precision[k], 4) for k in ks], round(r.mean_ap, 4),
         round(r.index_seconds, 2), round(r.median_query_ms, 2)]
        for r in rows
    ]
    plot = pd.DataFrame(
        [{"k": k, "precision": r.precision[k], "run": " ".join(filter(None, [r.engine, r.settings, r.metric]))}
         for r in rows for k in range(1, PLOT_MAX_K + 1)]
    )
    handle, csv_path = tempfile.mkstemp(prefix="evaluation-", suffix=".csv")
    with os.fdopen(handle, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(table)
    status = f"Evaluated {gallery.source}: {note}."
    return pd.DataFrame(table, columns=header), plot, csv_path, status


def build(service: SearchService, controls: EngineControls, source: gr.State) -> None:
    """The tab's components and events (inside a ``gr.Tab``)."""
    gr.Markdown("Every test image queries the train split; relevant = same class. AP is over the whole ranking.")
    first = next(iter(available_engines()))
    with gr.Row():
        engines = gr.CheckboxGroup(engine_choices(), value=[first], label="Engines")
        all_metrics = list(dict.fromkeys(m for n in available_engines() for m in engine_info(n).metrics))
        metrics = gr.CheckboxGroup(all_metrics, value=[], label="Metrics (none chosen: all of each engine's)")
        ks = gr.Textbox("1,5,10", label="k for P@k")
    button = gr.Button("Run evaluation", variant="primary", elem_id="eval-button")
    status = gr.Markdown()
    table = gr.Dataframe(label="Precision at k and mAP", interactive=False, elem_id="eval-table")
    plot = gr.LinePlot(x="k", y="precision", color="run", label="Precision at k", y_lim=[0, 1])
    csv_file = gr.File(label="Download the table (CSV)")

    n = len(controls.options)

    def on_evaluate(
        source_value: str, names: list[str], *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> tuple[Any, Any, str, str]:
        choices, (chosen_metrics, ks_text) = controls.choices(values[:n]), values[n:]
        return run_evaluation(service, source_value, names, choices, chosen_metrics, ks_text, progress)

    button.click(
        on_evaluate, [source, engines, *controls.inputs, metrics, ks], [table, plot, csv_file, status],
        api_name="evaluate", concurrency_limit=1,
    )
