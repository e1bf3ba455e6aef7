"""CLIP on a GPU, where there is one: what ``backend="auto"`` picks, whether its vectors are
the CPU's, and how fast a full-size ViT-B/32 (random weights) indexes and answers.

The product never needs a GPU; this is the figure for machines that have one (the README's
"Scaling" table). It generates its photos (smooth gradients with noise, 160-640 px) so that
it runs where the aio dataset is not, and prints SKIP without CUDA.

    python benchmarks/gpu.py [--images 2048] [--batch-sizes 32,64,128]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import median_ms
from engines import as_gallery_items
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines.testing import build_full_size_clip, make_photo


def photos(folder: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        width, height = (int(v) for v in rng.integers(160, 640, 2))
        path = folder / f"{n:05d}.jpg"
        make_photo(rng, (width, height), noise=25.0).save(path, quality=90)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-sizes", default="32,64,128")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device here; the product runs on the CPU (benchmarks/clip.py)")
        raise SystemExit(0)
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; CPU cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_full_size_clip(Path(tmp) / "clip-b32-random")
        files = photos(Path(tmp) / "photos", args.images)
        items = as_gallery_items(files)

        auto = ClipEmbedder(EmbedderConfig(str(model_dir)))
        auto.embed_texts(["warm up"])
        runtime = "ONNX Runtime" if auto._onnx is not None else "PyTorch"
        print(f'backend="auto" runs {runtime} on {auto.device}')

        cpu = ClipEmbedder(EmbedderConfig(str(model_dir), device="cpu", backend="torch"))
        sample = [item.open() for item in items[:32]]
        cosines = np.sum(auto.embed_images(sample) * cpu.embed_images(sample), axis=1)
        texts = ["a red double-decker bus", "two dogs on a beach", "a bowl of soup"]
        text_cosines = np.sum(auto.embed_texts(texts) * cpu.embed_texts(texts), axis=1)
        print(f"vectors against the CPU's (PyTorch fp32): images lowest cosine {cosines.min():.6f}, "
              f"sentences {text_cosines.min():.6f}")

        print("| batch | images/s, decode and preprocess included | model alone, images/s |")
        print("|---|---|---|")
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            embedder = ClipEmbedder(EmbedderConfig(str(model_dir), batch_size=batch, workers=min(16, os.cpu_count() or 4)))
            embedder.embed_texts(["warm up"])
            list(embedder.embed_items(items[: 2 * batch]))  # warm-up: kernels chosen, memory pooled
            started = time.perf_counter()
            vectors = list(embedder.embed_items(items))
            rate = len(vectors) / (time.perf_counter() - started)
            inputs = embedder._pixel_values(sample[:1] * batch)

            def model_only(embedder: ClipEmbedder = embedder, inputs: dict = inputs) -> None:
                embedder._features("get_image_features", inputs)
                torch.cuda.synchronize()

            model_rate = batch / (median_ms(model_only, 10) / 1000)
            print(f"| {batch} | {rate:,.0f} | {model_rate:,.0f} |")
        query = sample[0]
        image_ms = median_ms(lambda: auto.embed_images([query]), 20)
        text_ms = median_ms(lambda: auto.embed_texts(["a red double-decker bus"]), 20)
        print(f"one image query (preprocess + model) {image_ms:.1f} ms; one sentence {text_ms:.1f} ms")


if __name__ == "__main__":
    main()
