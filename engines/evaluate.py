"""Retrieval quality of an engine: every test image queried against the train split.

Relevance is "same class". For each engine and metric this reports precision at k
(relevant results among the first k, divided by k) and mean average precision, where a
query's AP is taken over the whole ranked database: the mean, over every relevant
database image, of the precision at its rank. Also reported: index time and the median
time of one query.

    python -m engines.evaluate --data DIR --engine pixel --metric l2,cosine --k 1,5,10
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from .base import SearchEngine, SearchResult, SkippedFile
from .errors import EngineError, GalleryError, ModelUnavailableError
from .galleries.gallery import Gallery, Items, as_gallery_items, load_gallery
from .galleries.items import GalleryItem
from .registry import available_engines, create_engine, engine_options
from .settings import EVALUATE, add_arguments, from_environment

log = logging.getLogger(__name__)
DEFAULT_KS = (1, 5, 10)


@dataclass
class EvaluationRow:
    """Figures for one engine x metric."""

    engine: str
    metric: str
    queries: int
    precision: dict[int, float]
    mean_ap: float
    index_seconds: float
    median_query_ms: float
    settings: str = ""
    skipped: list[SkippedFile] = field(default_factory=list)
    #: Vectors the index build had to compute; 0 means the index was reused from caches.
    computed: int = 0


@dataclass
class _Figures:
    """Per-query figures of one metric, collected while the queries run."""

    precision: dict[int, list[float]]
    ap: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)


def average_precision(relevant: Sequence[bool], total_relevant: int) -> float:
    """AP of one ranking; ``total_relevant`` counts the relevant images in the database."""
    if total_relevant == 0:
        return 0.0
    hits, total = 0, 0.0
    for rank, is_relevant in enumerate(relevant, start=1):
        if is_relevant:
            hits += 1
            total += hits / rank
    return total / total_relevant


def _is_item(result: SearchResult, item: GalleryItem) -> bool:
    """Whether ``result`` is ``item`` itself (by file, or by position for items without one)."""
    return result.path == item.path if item.path is not None else result.position == item.position


def precision_at(relevant: Sequence[bool], k: int) -> float:
    """Relevant results among the first ``k``, over ``k`` (a short list counts as misses)."""
    return sum(relevant[:k]) / k


def evaluate(
    engine: SearchEngine,
    database: Items,
    queries: Items | None,
    *,
    metrics: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    settings: str = "",
    progress: bool = True,
) -> list[EvaluationRow]:
    """Index ``database`` with ``engine``, run every query with every metric, return the figures.

    ``queries=None`` is leave-one-out: each database image queries all the others (it is
    dropped from its own ranking), for labelled galleries that have no query split.
    """
    chosen = [engine.check_metric(m) for m in (metrics or engine.metrics)]
    if not ks or min(ks) < 1:
        raise ValueError(f"Expected k values of at least 1, got {list(ks)}")
    started = time.perf_counter()
    engine.index(database, progress=progress)
    index_seconds = time.perf_counter() - started
    leave_one_out = queries is None
    query_items = as_gallery_items(database if queries is None else queries)

    per_metric = {m: _Figures({k: [] for k in ks}) for m in chosen}
    skipped: list[SkippedFile] = []
    bar = tqdm(total=len(query_items) * len(chosen), desc=f"Evaluating ({engine.name})", disable=not progress)
    try:
        for item in query_items:
            try:
                # Decoded once and reused for every metric: the timing is the engine's.
                image = item.open()
            except EngineError as exc:
                skipped.append(SkippedFile(item.source, getattr(exc, "reason", str(exc))))
                bar.update(len(chosen))
                continue
            # Embedded once and ranked under every metric: a query's time is its embedding and one ranking.
            t0 = time.perf_counter()
            vector = engine.query_vector(image)
            embed_ms = (time.perf_counter() - t0) * 1000
            for metric in chosen:
                t0 = time.perf_counter()
                ranking = engine.search_vector(vector, k=len(engine), metric=metric)
                per_metric[metric].ms.append(embed_ms + (time.perf_counter() - t0) * 1000)
                if leave_one_out:
                    ranking = [r for r in ranking if not _is_item(r, item)]
                relevant = [r.label == item.label for r in ranking]
                for k in ks:
                    per_metric[metric].precision[k].append(precision_at(relevant, k))
                # The ranking holds the whole database, so it holds every relevant image.
                per_metric[metric].ap.append(average_precision(relevant, sum(relevant)))
                bar.update(1)
    finally:
        bar.close()
    rows = []
    for metric, figures in per_metric.items():
        rows.append(
            EvaluationRow(
                engine=engine.name,
                metric=metric,
                queries=len(figures.ap),
                precision={k: float(np.mean(v)) if v else 0.0 for k, v in figures.precision.items()},
                mean_ap=float(np.mean(figures.ap)) if figures.ap else 0.0,
                index_seconds=index_seconds,
                median_query_ms=statistics.median(figures.ms) if figures.ms else 0.0,
                settings=settings,
                skipped=skipped + list(engine.skipped),
                computed=engine.last_computed,
            )
        )
    return rows


def evaluation_queries(gallery: Gallery) -> tuple[list[GalleryItem] | None, str]:
    """The queries to evaluate ``gallery`` with (``None``: leave-one-out), and a note saying which.

    Raises ``GalleryError`` for a gallery without class labels: a photo tree's folders say
    where a photo sits, not what it shows, so "same folder" is no measure of relevance.
    """
    if not gallery.labelled:
        raise GalleryError(
            "Evaluation needs class labels: a folder per class (optionally under train/ and test/), "
            "or a dataset with a label column. This gallery is a tree of photos labelled only by their folders."
        )
    if "test" in gallery:
        return gallery["test"], f"{len(gallery['test'])} test images query the {len(gallery['train'])} database images"
    return None, (
        f"no test split: leave-one-out, each of the {len(gallery['train'])} database images queries all the others"
    )


def format_table(rows: Sequence[EvaluationRow]) -> str:
    """A plain-text table of ``rows`` (one line per engine x metric)."""
    if not rows:
        return "(no results)"
    ks = sorted(rows[0].precision)
    header = ["engine", "settings", "metric", "queries", *[f"P@{k}" for k in ks], "mAP", "index s", "query ms"]
    lines = [header]
    for r in rows:
        lines.append([
            r.engine, r.settings or "-", r.metric, str(r.queries),
            *[f"{r.precision[k]:.3f}" for k in ks], f"{r.mean_ap:.3f}",
            f"{r.index_seconds:.2f}", f"{r.median_query_ms:.2f}",
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def _parse_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.evaluate", description=__doc__.split("\n\n")[0])
    add_arguments(parser, EVALUATE, from_environment(EVALUATE), required=frozenset({"data"}))
    parser.add_argument("--engine", default="pixel", help=f"comma-separated: {', '.join(available_engines())}")
    parser.add_argument("--metric", help="comma-separated metrics (default: all the engine's)")
    parser.add_argument("--k", default="1,5,10", help="comma-separated k values for P@k")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        ks = [int(k) for k in _parse_list(args.k)]
    except ValueError:
        parser.error(f"--k expects comma-separated integers, got {args.k!r}")
    try:
        gallery = load_gallery(args.data)
        queries, note = evaluation_queries(gallery)
        print(f"{args.data}: {note}", file=sys.stderr)
        rows: list[EvaluationRow] = []
        for name in _parse_list(args.engine):
            accepted = engine_options(name)
            variants: list[dict[str, Any]] = [{}]
            if "features" in accepted and args.features:
                variants = [{"features": f} for f in _parse_list(args.features)]
            for options in variants:
                if "model" in accepted:
                    options["model"] = args.model
                engine = create_engine(name, **options)
                settings = ",".join(f"{k}={v}" for k, v in options.items() if k != "model")
                rows += evaluate(
                    engine, gallery["train"], queries,
                    metrics=_parse_list(args.metric) or None, ks=ks, settings=settings,
                    progress=not args.no_progress,
                )
    except (EngineError, ValueError) as exc:
        hint = " (pass --model DIR with a local copy of a CLIP model)" if isinstance(exc, ModelUnavailableError) else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(format_table(rows))
        skipped = {s.source: s.reason for r in rows for s in r.skipped}
        for source, reason in skipped.items():
            print(f"skipped {source}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
