"""Retrieval quality of every engine, feature and metric on one labelled gallery, in one run.

Relevance is "same class"; every test image queries the train split (leave-one-out where
there is no test split). For each configuration: P@1, P@10 and mAP (AP over the whole
ranked database). Configurations: the pixel engine's raw 32x32 pixels under l1, l2, cosine
and correlation, its colour histogram and its pHash; the packaged EfficientNet-Lite0
(real ImageNet weights) in fp32 and int8 (for int8 also its top-10 overlap with fp32 and
the change in P@10); and every CLIP-family model on this machine (``--models``, or found
in the Hugging Face cache). The README's quality table is this script's output.

    python benchmarks/quality.py [--data DIR] [--models ID_OR_DIR,...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import AIO
from engines import GalleryItem, SearchEngine, create_engine, load_gallery
from engines.evaluate import evaluate, evaluation_queries
from engines.model.catalog import cached_models

PIXEL_RUNS = [
    ("pixel", {"features": "pixels"}, ["l1", "l2", "cosine", "correlation"]),
    ("pixel", {"features": "histogram"}, ["l1", "l2", "cosine", "correlation"]),
    ("pixel", {"features": "phash"}, ["l1"]),
]


def top10(engine: SearchEngine, queries: list[GalleryItem]) -> list[list[str | None]]:
    return [[r.path for r in engine.search(str(q.path), k=10)] for q in queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(AIO), help="a labelled gallery (class folders); default: aio")
    parser.add_argument("--models", default="", help="CLIP-family models to add (Hub ids in the cache, folders)")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        print(f"SKIP: no gallery at {args.data} (aio is read from ../shared or $IMAGE_SEARCH_AIO, never committed)")
        return
    gallery = load_gallery(args.data)
    queries, how = evaluation_queries(gallery)
    print(f"gallery {args.data}: {len(gallery['train'])} database images; queries: {how}")
    models = [m for m in args.models.split(",") if m] + sorted(cached_models())
    rows: list[tuple[str, str, dict[int, float], float, float]] = []
    extra: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        runs: list[tuple[str, dict[str, object], list[str]]] = list(PIXEL_RUNS)
        runs += [("clip", {"model": "efficientnet-lite0", "precision": p}, ["cosine"]) for p in ("fp32", "int8")]
        runs += [("clip", {"model": m, "precision": "fp32"}, ["cosine"]) for m in models]
        tops: dict[str, list[list[str | None]]] = {}
        for name, options, metrics in runs:
            engine = create_engine(name, cache_dir=cache, export_dir=str(Path(tmp) / "onnx"), **options) \
                if name == "clip" else create_engine(name, cache_dir=cache, **options)
            label = f"{name} " + " ".join(f"{v}" for v in options.values())
            started = time.perf_counter()
            try:
                found = evaluate(engine, gallery["train"], queries, metrics=metrics, ks=(1, 10), progress=False)
            except Exception as exc:  # noqa: BLE001 - a model that cannot load here is reported, not fatal
                print(f"{label}: not measured ({type(exc).__name__}: {exc})")
                continue
            for row in found:
                rows.append((label, row.metric, row.precision, row.mean_ap, time.perf_counter() - started))
            if name == "clip" and options.get("model") == "efficientnet-lite0" and queries is not None:
                tops[str(options["precision"])] = top10(engine, queries)
    print()
    print("| engine and features | metric | P@1 | P@10 | mAP |")
    print("|---|---|---|---|---|")
    for label, metric, precision, mean_ap, _ in rows:
        print(f"| {label} | {metric} | {precision[1]:.3f} | {precision[10]:.3f} | {mean_ap:.3f} |")
    if {"fp32", "int8"} <= set(tops):
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(tops["fp32"], tops["int8"], strict=True)])
        p10 = {label.split()[-1]: precision[10] for label, _, precision, _, _ in rows if "efficientnet" in label}
        extra.append(f"efficientnet-lite0 int8 against fp32: top-10 overlap {overlap:.3f} (goal >= 0.9), "
                     f"P@10 {p10['int8'] - p10['fp32']:+.3f} ({(p10['int8'] - p10['fp32']) * 100:+.1f} points; "
                     f"int8 stays a choice, not the default, if it costs more than 2)")
    best_pixel = max((p[10] for label, _, p, _, _ in rows if label.startswith("pixel")), default=0.0)
    learned = max((p[10] for label, _, p, _, _ in rows if "efficientnet-lite0 fp32" in label), default=0.0)
    if best_pixel:
        extra.append(f"learned (efficientnet-lite0 fp32) P@10 {learned:.3f} against the best pixel feature's "
                     f"{best_pixel:.3f}: {learned / best_pixel:.1f}x")
    print()
    for line in extra:
        print(line)


if __name__ == "__main__":
    main()
