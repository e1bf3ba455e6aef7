"""Scaling: images/s in one process against Ray Data with 1 and 2 embedding actors, the Chroma
server's insert rate, and export / import of an index as a ``datasets`` dataset.

    python benchmarks/scale.py [--images 240] [--full]

Embedding runs on the aio images (or the demo gallery where aio is absent) with the tiny random
CLIP model, and with ``--full`` also a full-size ViT-B/32 of random weights (same cost as the
real one). This machine has 2 cores: Ray is started with 3 logical CPUs so that 2 actors leave
one for Ray Data's read tasks; 2 actors then share 2 cores with the driver, so the curve shows
Ray's overhead here, and the figures per actor are what a cluster multiplies.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import AIO, ROOT
from engines import create_engine, load_gallery
from engines.model.embedder import EmbedderConfig
from engines.testing import build_tiny_clip, free_port


def images(count: int) -> list[str]:
    files = sorted(str(p) for p in AIO.glob("*/*/*")) or sorted(str(p) for p in (ROOT / "data").glob("*/*/*.png"))
    return (files * (count // max(1, len(files)) + 1))[:count] if len(files) < count else files[:count]


def rate(model: str, files: list[str], cache: Path, ray_actors: int | None) -> tuple[float, np.ndarray]:
    """(images/s, vectors) for one fresh CLIP index of ``files``."""
    from engines.model.embedder import ClipEmbedder

    config = EmbedderConfig(model=model, export_dir=str(cache / "onnx"))
    embedder: ClipEmbedder
    if ray_actors is not None:
        from engines.model.ray_embed import RayEmbedder

        embedder = RayEmbedder(config, actors=ray_actors)
    else:
        embedder = ClipEmbedder(config)
    embedder.load()  # the model load is not the rate
    engine = create_engine("clip", cache="off", embedder=embedder)
    started = time.perf_counter()
    engine.index(files, progress=False)
    seconds = time.perf_counter() - started
    return len(files) / seconds, engine.vectors().matrix


def chroma_server_rate(folder: Path, n: int = 20_000, dim: int = 512) -> float:
    import chromadb

    from engines.testing import start_chroma_server

    port = free_port()
    server = start_chroma_server(folder / "server", port)
    try:
        client = chromadb.HttpClient(host="127.0.0.1", port=port)
        collection = client.create_collection("bench", embedding_function=None)
        limit = client.get_max_batch_size()
        vectors = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
        started = time.perf_counter()
        for i in range(0, n, limit):
            collection.add(ids=[str(j) for j in range(i, min(n, i + limit))], embeddings=vectors[i : i + limit])
        return n / (time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--full", action="store_true", help="also a full-size ViT-B/32 (random weights)")
    args = parser.parse_args()
    import ray

    files = images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = [("tiny random CLIP", str(build_tiny_clip(folder / "tiny")))]
        if args.full:
            from engines.testing import build_full_size_clip

            models.append(("ViT-B/32 (random weights)", str(build_full_size_clip(folder / "full"))))
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
        print(f"{len(files)} images; Ray with {int(ray.cluster_resources()['CPU'])} logical CPUs on "
              f"{__import__('os').cpu_count()} cores\n")
        print("| model | one process | Ray, 1 actor | Ray, 2 actors | vectors equal |\n|---|---|---|---|---|")
        for title, model in models:
            base, reference = rate(model, files, folder, None)
            cells, same = [], True
            for actors in (1, 2):
                figure, vectors = rate(model, files, folder, actors)
                same = same and np.allclose(vectors, reference, atol=1e-5)
                cells.append(f"{figure:.1f} img/s ({figure / base:.2f}×)")
            print(f"| {title} | {base:.1f} img/s | {' | '.join(cells)} | {'yes' if same else 'NO'} |")
        ray.shutdown()

        print(f"\nChroma server insert (20,000 x 512, batches of the server's limit): {chroma_server_rate(folder):,.0f} vectors/s")
        engine = create_engine("clip", model=models[0][1], cache_dir=folder / "cache")
        engine.index(files, progress=False)
        started = time.perf_counter()
        where = engine.export(folder / "exported")
        export_s = time.perf_counter() - started
        started = time.perf_counter()
        gallery = load_gallery(where)
        again = create_engine("clip", model=models[0][1], cache_dir=folder / "cache2")
        again.index(gallery["train"], progress=False)
        import_s = time.perf_counter() - started
        print(f"export of {len(engine)} images with vectors: {export_s:.2f} s; load + index from it: {import_s:.2f} s "
              f"({again.last_computed} embedded)")


if __name__ == "__main__":
    main()
