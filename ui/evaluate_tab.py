"""The Evaluate tab: every test image queries the train split; P@k, mAP, a plot and a CSV."""

from __future__ import annotations

from typing import Any

import gradio as gr

from engines import available_engines, engine_info

from .actions.evaluation import evaluate_engines
from .controls import EngineControls, engine_choices
from .messages import in_the_page
from .named import Parts
from .service import SearchService

#: The plot's line colours, in the order of the runs (Tableau 10: distinct, colour-blind friendly).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")


def run_evaluation(
    service: SearchService, source: str, names: list[str], choices: dict[str, str | None], metrics: list[str],
    ks_text: str, progress: Any = None,
) -> dict[str, Any]:
    """What the tab shows for engines ``names`` on ``source``'s gallery, by name: ``table``,
    ``plot``, ``csv_file`` and ``status``."""
    done = evaluate_engines(service, source, names, choices, metrics, ks_text, progress)
    top = float(done.points["precision"].max())
    # The colours and legend are this run's: named per run, so a later run with other or fewer
    # lines never shows the colours (or the names) of an earlier one.
    runs = list(dict.fromkeys(done.points["run"]))
    colours = {run: PALETTE[n % len(PALETTE)] for n, run in enumerate(runs)}
    plot = gr.update(value=done.points, color_map=colours, colors_in_legend=runs, x_lim=[1, done.plot_ks[-1]],
                     y_lim=[0, min(1.0, round(top * 1.15 + 0.005, 2))])
    return {"table": done.table, "plot": plot, "csv_file": done.csv_path, "status": done.status}


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
    status = gr.Markdown(elem_id="eval-status")
    table = gr.Dataframe(label="Precision at k and mAP", interactive=False, elem_id="eval-table")
    # k is a count: whole-number ticks ("d"); the y range is fitted to the figures after each run.
    plot = gr.LinePlot(x="k", y="precision", color="run", label="Precision at k", y_lim=[0, 1], x_axis_format="d")
    csv_file = gr.File(label="Download the table (CSV)")

    parts = Parts(table=table, plot=plot, csv_file=csv_file, status=status)
    n = len(controls.options)

    def on_evaluate(
        source_value: str, names: list[str], *values: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> dict[Any, Any]:
        choices, (chosen_metrics, ks_text) = controls.choices(values[:n]), values[n:]
        return parts.show(run_evaluation(service, source_value, names, choices, chosen_metrics, ks_text, progress))

    def failed(message: str) -> dict[Any, Any]:
        # The figures of an earlier run go: beside this failure they would read as its results.
        return parts.show({"table": None, "plot": None, "csv_file": None, "status": f"**Could not evaluate.** {message}"})

    inputs = [source, engines, *controls.inputs, metrics, ks]
    button.click(in_the_page(on_evaluate, failed), inputs, parts.outputs(), api_visibility="private",
                 concurrency_limit=1, concurrency_id="evaluate")
