"""CLIP indexing speed on the aio dataset: the engine's batched, pipelined embedder against a
naive loop that sends one image at a time through the processor and the model, in one run.

The model has the exact ``openai/clip-vit-base-patch32`` architecture (``CLIPConfig()``
defaults) with random weights, built locally: the weights' values do not change the speed,
and the Hub is not reachable from the build machines.

    python benchmarks/clip.py [--limit 160] [--batch-size N] [--workers N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from _common import median_ms, require_aio
from engines import as_gallery_items, list_image_files
from engines.embedder import ClipEmbedder, EmbedderConfig
from engines.testing import build_tiny_clip  # the tokenizer and processor recipe

GOAL = 1.8


def build_full_size_clip(folder: Path) -> Path:
    """ViT-B/32 CLIP with random weights and CLIP's own image preprocessing."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    build_tiny_clip(folder)  # writes a small tokenizer; replaced below except for it
    torch.manual_seed(0)
    CLIPModel(CLIPConfig()).eval().save_pretrained(folder)
    processor = CLIPProcessor.from_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=processor.tokenizer).save_pretrained(folder)
    return folder


def naive(model_dir: Path, files: list[str]) -> tuple[float, np.ndarray]:
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    out = []
    started = time.perf_counter()
    with torch.inference_mode():
        for path in files:
            image = Image.open(path).convert("RGB")
            features = model.get_image_features(**processor(images=image, return_tensors="pt")).pooler_output
            out.append(torch.nn.functional.normalize(features, dim=-1)[0].numpy())
    return time.perf_counter() - started, np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=160, help="gallery images to embed (0: all 595)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the embedder's for the device")
    parser.add_argument("--workers", type=int, default=None, help="decode/preprocess threads (default: the embedder's)")
    args = parser.parse_args()
    aio = require_aio()
    files = list_image_files(aio / "train")
    files = files[: args.limit] if args.limit else files
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_full_size_clip(Path(tmp) / "clip-b32-random")
        naive_seconds, reference = naive(model_dir, files)

        embedder = ClipEmbedder(EmbedderConfig(str(model_dir), batch_size=args.batch_size, workers=args.workers))
        embedder.embed_texts(["warm up"])
        items = as_gallery_items(files)
        started = time.perf_counter()
        vectors = np.stack(list(embedder.embed_items(items)))
        fast_seconds = time.perf_counter() - started

        parity = float(np.min(np.sum(vectors * reference, axis=1)))
        query = Image.open(list_image_files(aio / "test")[0]).convert("RGB")
        image_ms = median_ms(lambda: embedder.embed_images([query]), 10)
        text_ms = median_ms(lambda: embedder.embed_texts(["a red double-decker bus"]), 10)

    n = len(files)
    ratio = naive_seconds / fast_seconds
    print(f"images: {n}; torch threads: {torch.get_num_threads()}; decode/preprocess threads: {embedder.workers}; "
          f"batch size: {embedder.batch_size}; device: {embedder.device}")
    print(f"naive loop (one image at a time): {n / naive_seconds:6.1f} images/s")
    print(f"engine (batched, pipelined):      {n / fast_seconds:6.1f} images/s  -> {ratio:.2f}x")
    print(f"lowest cosine between the two paths' vectors: {parity:.6f}")
    print(f"single query latency: image {image_ms:.0f} ms, text {text_ms:.0f} ms")
    verdict = "meets" if ratio >= GOAL else "MISSES"
    print(f"{verdict} the goal of >= {GOAL}x the naive loop's indexing throughput")


if __name__ == "__main__":
    main()
