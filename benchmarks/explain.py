"""How long "Why this result?" takes, and whether its heat lands where the match is.

Scenes: a query photo, and a result made of noise with the query shrunk into one quadrant
(which quadrant varies). Per engine: the median time to explain one result (the result's
heatmap alone, and with the image query's too), against the time of one search in the
same run (the baseline: what a user already waits for), and how often the quadrant that
holds the query gets the highest mean heat.

* pixel (raw pixels, l1; colour histograms, l1): exact shares of the score;
* CLIP ViT-B/32 with random weights at full size on ONNX Runtime fp32 and int8: occlusion,
  a 4x4 grid (16 covered copies and the result, one batch).

Goals (2-core CPU): pixel <= 20 ms; CLIP one result <= 1 s int8, <= 2 s fp32.

    python benchmarks/explain.py [--scenes 6] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import median_ms
from engines import create_engine
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines.testing import build_full_size_clip, make_photo

GOALS_MS = {"pixel": 20.0, "pixel histogram": 20.0, "clip onnx int8": 1000.0, "clip onnx fp32": 2000.0}
QUADRANTS = ((0, 0), (1, 0), (0, 1), (1, 1))  # (column, row) of the pasted query


def make_scenes(folder: Path, count: int) -> list[tuple[Path, Path, tuple[int, int]]]:
    """(query, result, quadrant) scenes at 640x480, the query a photo-like image."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    scenes = []
    for n in range(count):
        query = make_photo(rng, (640, 480))
        result = Image.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8))
        column, row = QUADRANTS[n % 4]
        result.paste(query.resize((320, 240)), (320 * column, 240 * row))
        query_path, result_path = folder / f"query_{n}.jpg", folder / f"result_{n}.jpg"
        query.save(query_path, quality=92)
        result.save(result_path, quality=92)
        scenes.append((query_path, result_path, (column, row)))
    return scenes


def hit(heat: np.ndarray, quadrant: tuple[int, int]) -> bool:
    rows, columns = heat.shape
    means = {(c, r): heat[r * rows // 2 : (r + 1) * rows // 2, c * columns // 2 : (c + 1) * columns // 2].mean()
             for c, r in QUADRANTS}
    return max(means, key=means.__getitem__) == quadrant


def measure(name: str, engine, scenes, repeat: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    engine.index(str(scenes[0][0].parent), progress=False)
    query, result, _ = scenes[0]
    search = median_ms(lambda: engine.search(query, k=10), repeat)
    alone = median_ms(lambda: engine.explain(query, result, query_heatmap=False), repeat)
    both = median_ms(lambda: engine.explain(query, result), repeat)
    hits = sum(hit(engine.explain(q, r, query_heatmap=False).heatmap, quadrant) for q, r, quadrant in scenes)
    return {"engine": name, "explain": alone, "with query": both, "search": search,
            "hits": f"{hits}/{len(scenes)}", "goal": GOALS_MS[name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        scenes = make_scenes(scratch / "scenes", args.scenes)
        rows = [
            measure("pixel", create_engine("pixel", cache=False), scenes, args.repeat * 4),
            measure("pixel histogram", create_engine("pixel", features="histogram", cache=False), scenes,
                    args.repeat * 4),
        ]
        model = build_full_size_clip(scratch / "clip-b32-random")
        for precision in ("int8", "fp32"):
            embedder = ClipEmbedder(EmbedderConfig(str(model), backend="onnx", precision=precision,
                                                   export_dir=str(scratch / "onnx")))
            embedder.embed_texts(["warm up"])  # export and load before timing
            engine = create_engine("clip", embedder=embedder, cache_dir=str(scratch / "cache"))
            started = time.perf_counter()
            rows.append(measure(f"clip onnx {precision}", engine, scenes, args.repeat))
            print(f"# {precision}: measured in {time.perf_counter() - started:.0f} s", flush=True)
    print("| engine | explain one result | with the query's heatmap | one search (baseline) | ratio | "
          "heat highest in the pasted quadrant | goal |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        met = "met" if row["explain"] <= row["goal"] else "NOT met"  # type: ignore[operator]
        print(f"| {row['engine']} | {row['explain']:.1f} ms | {row['with query']:.1f} ms | {row['search']:.1f} ms | "
              f"{row['explain'] / row['search']:.1f}x | {row['hits']} | <= {row['goal']:.0f} ms: **{met}** |")  # type: ignore[operator]


if __name__ == "__main__":
    main()
