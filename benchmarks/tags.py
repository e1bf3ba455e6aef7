"""Tags from the user's words: 20 tags over 10,000 embedded photos (goal: at most 2 s once
the photos are embedded), against a baseline that scores the photos one at a time.

The photos' vectors are random unit vectors of ViT-B/32's size (512; scoring does not depend
on their values); the 20 tags are embedded by a full-size ViT-B/32 CLIP with random weights on
ONNX Runtime, as the app does (the export, first start only, is not counted).

    python benchmarks/tags.py [--photos 10000] [--tags 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from engines.analysis.tags import TagRule, build_table
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines.testing import build_full_size_clip

GOAL_S = 2.0
WORDS = ("beach", "snow", "dog", "cat", "receipt", "screenshot", "mountain", "city at night", "food", "car",
         "baby", "birthday cake", "forest", "document", "sunset", "flowers", "a crowd of people", "boat",
         "selfie", "whiteboard")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=20)
    args = parser.parse_args()
    names = [WORDS[i % len(WORDS)] + ("" if i < len(WORDS) else f" {i}") for i in range(args.tags)]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.photos, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [f"photo-{i}" for i in range(args.photos)]
    with tempfile.TemporaryDirectory() as tmp:
        model = build_full_size_clip(Path(tmp) / "clip")
        embedder = ClipEmbedder(EmbedderConfig(str(model), export_dir=str(Path(tmp) / "onnx")))
        embedder.embed_texts(["warm up"])  # loads and exports: not counted
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            table = build_table([TagRule(n) for n in names], records, vectors, embedder.embed_texts(names))
            best = min(best, time.perf_counter() - started)
        words = embedder.embed_texts(names)
        started = time.perf_counter()
        naive = np.array([[float(np.dot(v, w)) for w in words] for v in vectors])
        baseline = time.perf_counter() - started + best  # the same texts, then the photos scored pair by pair
    assert np.allclose(naive, table.scores, atol=1e-4)
    print(f"{args.tags} tags over {args.photos:,} photos: {best:.3f} s (texts embedded, scored, thresholded); "
          f"one pair at a time: {baseline:.2f} s ({baseline / best:.0f}x); "
          f"goal <= {GOAL_S} s: {'met' if best <= GOAL_S else 'NOT met'}; "
          f"{int(table.passed.sum()):,} tags given")


if __name__ == "__main__":
    main()
