"""A warm command-line query: ``image-search`` on a gallery already indexed, timed as a user's shell
times it (a new process each time: imports, model, cached index, one query).

For ViT-B/32 at full size (random weights, the real one's cost) and the packaged EfficientNet-Lite0,
on the repository's ``data/`` gallery with a cache folder of its own: the first run (export and
index), then the median of three warm runs of an image query and of a sentence. The baseline, in
the same run: the same warm image query with ``--backend torch``, which loads the weights with
PyTorch each time, as every warm query did before a model ran from its ONNX export alone.

Goal (issue 34): a warm query <= 1 s on 2 cores.

    python benchmarks/cli_warm.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engines.testing import build_full_size_clip

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 1.0


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ui.cli", *args], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    query = str(next((ROOT / "data" / "test").rglob("*.png")))
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(scratch) / "xdg"), "HF_HUB_OFFLINE": "1"}
        vit = str(build_full_size_clip(Path(scratch) / "vit-b-32"))
        common = ["--data", str(ROOT / "data"), "--no-progress", "-k", "1"]
        print("| model | first run | warm image query | warm sentence | baseline: warm image query, weights loaded | ratio |")
        print("|---|---|---|---|---|---|")
        for name, model in (("ViT-B/32 (full size, random weights)", vit), ("EfficientNet-Lite0 (packaged)", "efficientnet-lite0")):
            image = ["--image", query, "--model", model, *common]
            first = timed(image, env)
            warm = statistics.median(timed(image, env) for _ in range(3))
            sentence = (f"{statistics.median(timed(['a red bird', '--model', model, *common], env) for _ in range(3)):.2f} s"
                        if model != "efficientnet-lite0" else "(images only)")
            baseline = statistics.median(timed([*image, "--backend", "torch"], env) for _ in range(3))
            print(f"| {name} | {first:.1f} s | {warm:.2f} s | {sentence} | {baseline:.2f} s | {baseline / warm:.1f}x |")
            print(f"  warm image query {warm:.2f} s (goal <= {GOAL_S:.0f} s): {'met' if warm <= GOAL_S else 'NOT met'}",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
