"""Relevance feedback, simulated: does marking results and refining find more of the query's class?

For every query of a labelled gallery (aio's 60 test images against its 595; the demo gallery
in data/), a simulated user judges the top 10 by class, and the engine searches again with
``Query(positive=[the query, *relevant], negative=[*not relevant], negative_weight=w)``; a
second round judges the new top 10 and adds its marks. Reported: P@10 and mAP (over the whole
ranking, marked images included, as the user sees it) before and after one and two rounds,
for each pixel setting and each negative weight, so the default weight is chosen from figures.

    python benchmarks/feedback.py [--weights 0,0.25,0.5,1]

CLIP needs real weights (this machine cannot download them); run with ``--model DIR`` to add it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from _common import AIO, ROOT
from engines import Query, SearchEngine, SearchResult, create_engine, load_gallery
from engines.evaluate import average_precision


def judged(results: Sequence[SearchResult], label: str) -> tuple[list[SearchResult], list[SearchResult]]:
    relevant = [r for r in results if r.label == label]
    return relevant, [r for r in results if r.label != label]


def figures(ranking: Sequence[SearchResult], label: str) -> tuple[float, float]:
    hits = [r.label == label for r in ranking]
    return sum(hits[:10]) / 10, average_precision(hits, sum(hits))


def rounds(engine: SearchEngine, queries: Sequence[tuple[str, str]], metric: str, weight: float) -> np.ndarray:
    """Per query: P@10 and AP before, after one round and after two rounds (shape queries x 6)."""
    everything = len(engine)
    out = []
    for path, label in queries:
        ranking = engine.search(path, k=everything, metric=metric)
        row = [*figures(ranking, label)]
        relevant: dict[str, SearchResult] = {}
        other: dict[str, SearchResult] = {}
        for _ in range(2):
            good, bad = judged(ranking[:10], label)
            relevant.update({r.record: r for r in good})
            other.update({r.record: r for r in bad})
            query = Query(positive=[path, *relevant.values()], negative=list(other.values()), negative_weight=weight)
            ranking = engine.search(query, k=everything, metric=metric)
            row += [*figures(ranking, label)]
        out.append(row)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="0,0.25,0.5,1", help="negative weights to compare")
    parser.add_argument("--model", help="a local CLIP model directory, to include the CLIP engine")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    galleries = [("data", ROOT / "data")] + ([("aio", AIO)] if (AIO / "train").is_dir() else [])
    settings: list[tuple[str, dict[str, str]]] = [("pixel", {"features": "pixels"}), ("pixel", {"features": "histogram"})]
    if args.model:
        settings.append(("clip", {"model": args.model}))
    print("| gallery | engine | metric | w | P@10 before | after 1 round | after 2 | mAP before | after 1 | after 2 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    best: dict[float, list[float]] = {w: [] for w in weights}
    for gallery_name, folder in galleries:
        gallery = load_gallery(folder)
        queries = [(item.path or "", item.label) for item in gallery["test"]]
        for name, options in settings:
            engine = create_engine(name, **options)
            engine.index(gallery["train"], progress=False)
            label = name + (f" {options['features']}" if "features" in options else "")
            for metric in engine.metrics:
                for weight in weights:
                    table = rounds(engine, queries, metric, weight).mean(axis=0)
                    best[weight].append(table[2] - table[0])
                    print(f"| {gallery_name} | {label} | {metric} | {weight:g} | {table[0]:.3f} | {table[2]:.3f} | "
                          f"{table[4]:.3f} | {table[1]:.3f} | {table[3]:.3f} | {table[5]:.3f} |")
    print()
    for weight, gains in best.items():
        print(f"negative weight {weight:g}: P@10 gain after one round, mean over settings {np.mean(gains):+.3f}, "
              f"worst {min(gains):+.3f}")
    print("the default negative weight is engines.query.NEGATIVE_WEIGHT")


if __name__ == "__main__":
    main()
