"""Pixel engine speed on the aio dataset against the seed's naive loop, in one run.

The naive loop is what the seed code does for every query: open, decode and resize every
gallery image again, then compute the metric image by image. The engine decodes each
gallery image once at index time and answers a query with one vectorised pass.

    python benchmarks/pixel.py [--naive-queries 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time

import numpy as np
from PIL import Image

from _common import median_ms, require_aio
from engines import create_engine, list_image_files

GOAL = 100.0


def naive_search(query: np.ndarray, files: list[str], metric: str, size: tuple[int, int]) -> list[int]:
    scores = []
    for path in files:
        with Image.open(path) as image:
            row = np.asarray(image.convert("RGB").resize(size), dtype=np.float32).reshape(-1) / 255
        if metric == "l2":
            scores.append(float(np.sqrt(np.sum((row - query) ** 2))))
        elif metric == "l1":
            scores.append(float(np.sum(np.abs(row - query))))
        elif metric == "cosine":
            scores.append(-float(row @ query / (np.linalg.norm(row) * np.linalg.norm(query) + 1e-12)))
        else:
            scores.append(-float(np.corrcoef(row, query)[0, 1]))
    return list(np.argsort(scores)[:10])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--naive-queries", type=int, default=3, help="queries timed through the naive loop")
    args = parser.parse_args()
    aio = require_aio()
    files = list_image_files(aio / "train")
    queries = list_image_files(aio / "test")

    with tempfile.TemporaryDirectory() as cache:
        for features in ("pixels", "histogram"):
            engine = create_engine("pixel", features=features, cache_dir=cache)
            started = time.perf_counter()
            engine.index(files, progress=False)
            cold = time.perf_counter() - started
            started = time.perf_counter()
            engine.index(files, progress=False)
            warm = time.perf_counter() - started
            print(f"[{features}] index: {len(files) / cold:,.0f} images/s cold ({cold:.2f} s, "
                  f"{engine.workers} decode threads, {os.cpu_count()} cores); restart from cache {warm * 1000:.0f} ms")

        engine = create_engine("pixel", cache_dir=cache)
        engine.index(files, progress=False)
        query_images = [Image.open(q).convert("RGB") for q in queries]
        print("metric        engine ms/query   naive ms/query   speed-up")
        worst = float("inf")
        for metric in engine.metrics:
            cycle = itertools.cycle(query_images)
            fast = median_ms(lambda m=metric, c=cycle: engine.search(next(c), k=10, metric=m), 30)
            vectors = [np.asarray(q.resize(engine.size), np.float32).reshape(-1) / 255 for q in query_images]
            slow_times = []
            for n in range(args.naive_queries):
                started = time.perf_counter()
                naive_search(vectors[n], files, metric, engine.size)
                slow_times.append((time.perf_counter() - started) * 1000)
            slow = float(np.median(slow_times))
            worst = min(worst, slow / fast)
            print(f"{metric:<12} {fast:>12.2f}   {slow:>14.0f}   {slow / fast:>8.0f}x")
    verdict = "meets" if worst >= GOAL else "MISSES"
    print(f"slowest speed-up {worst:,.0f}x: {verdict} the goal of >= {GOAL:.0f}x faster than the naive loop")


if __name__ == "__main__":
    main()
