"""Evaluation: every test image of a labelled gallery queries its train split (leave-one-out
without one); precision at k and mAP per engine and metric, a precision curve and a CSV."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import gradio as gr

from engines import available_engines
from engines.evaluate import EvaluationRow, evaluate, evaluation_queries
from engines.registry import uses_a_model

from ..downloads import write_csv
from ..messages import USER_ERRORS, describe
from ..service import SearchService

if TYPE_CHECKING:
    import pandas as pd

#: The precision curve runs k = 1 .. PLOT_MAX_K.
PLOT_MAX_K = 20


@dataclass(frozen=True)
class Evaluation:
    """The table (a row per engine and metric), the curve's points (k, precision, run) for
    ``plot_ks``, the CSV written, and a status line naming what failed."""

    table: pd.DataFrame
    points: pd.DataFrame
    plot_ks: list[int]
    csv_path: str
    status: str


def parse_ks(text: str | None) -> list[int]:
    """k values typed as "1, 5 10"; a clear error for anything else."""
    try:
        ks = sorted({int(k) for k in re.split(r"[,\s]+", text or "") if k})
    except ValueError:
        raise gr.Error(f"Expected k values as comma-separated whole numbers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise gr.Error("Expected at least one k of 1 or more, e.g. 1,5,10")
    return ks


def evaluate_engines(
    service: SearchService, source: str, names: list[str], choices: dict[str, str | None], metrics: list[str],
    ks_text: str, progress: Any = None,
) -> Evaluation:
    """Precision at k and mAP of engines ``names`` on ``source``'s gallery.

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
    csv_path = write_csv(service.scratch_file("evaluation-", ".csv"), header, table)
    status = f"Evaluated {service.shown(gallery.source)}: " + "; ".join(notes) + "." + "".join(f"\n\n**{f}**" for f in failures)
    return Evaluation(pd.DataFrame(table, columns=header), points, plot_ks, csv_path, status)
