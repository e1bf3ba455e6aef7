"""Chroma at 10k and 100k vectors: bulk insert rate, query latency and recall@10 against exact
numpy brute force (the baseline, timed in the same run), for several HNSW search widths.

Two kinds of 512-d unit vectors (CLIP ViT-B/32's size):

* ``uniform``: random directions, the hardest case for a graph index (every point is almost
  equally far from every other; mean pairwise cosine 0);
* ``clustered``: shaped like real CLIP image embeddings, ``normalise(a m + b c_k + s e)`` with
  one shared direction ``m`` (CLIP embeddings share a large common component), a centre ``c_k``
  per cluster of about 100 images (a "class"), and per-image noise ``e``; with a^2 = 0.5,
  b^2 = 0.4, s^2 = 0.1 the mean pairwise cosine is about 0.5 and an image's nearest
  neighbours sit at about 0.9, as measured on CLIP embeddings of photo collections.

The collections are configured exactly as the Chroma engine configures its own
(``hnsw_configuration``); the search width ``ef_search`` is then varied on the built index.

    python benchmarks/chroma.py [--kinds uniform,clustered] [--sizes 10000,100000] [--ef 100,200,400,800]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from engines.storage.chroma_db import HNSW_SETTINGS, hnsw_configuration

GOAL_MS, GOAL_RECALL, GOAL_SIZE = 2.0, 0.99, 100_000


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def clustered_vectors(rng: np.random.Generator, n: int, dim: int, shared: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """CLIP-like unit vectors (see the module docstring): shared direction, cluster, noise."""
    picked = centres[rng.integers(0, len(centres), n)]
    v = np.sqrt(0.5) * shared + np.sqrt(0.4) * picked + np.sqrt(0.1) * unit_vectors(rng, n, dim)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="uniform,clustered")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--ef", default="100,200,400,800", help="ef_search values to try on each index")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    import chromadb
    from chromadb.api.client import SharedSystemClient
    from chromadb.config import Settings

    rng = np.random.default_rng(0)
    print(f"engine HNSW settings: {HNSW_SETTINGS}; dim {args.dim}; {args.queries} queries")
    met_goal = False
    with tempfile.TemporaryDirectory() as folder:
        client = chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
        limit = client.get_max_batch_size()
        for kind, n in ((k, int(s)) for k in args.kinds.split(",") for s in args.sizes.split(",")):
            if kind == "clustered":
                shared, centres = unit_vectors(rng, 1, args.dim)[0], unit_vectors(rng, max(1, n // 100), args.dim)
                data = clustered_vectors(rng, n, args.dim, shared, centres)
                queries = clustered_vectors(rng, args.queries, args.dim, shared, centres)
                sample = data[rng.choice(n, 1000, replace=False)]
                pairwise = float((sample @ sample.T)[np.triu_indices(1000, 1)].mean())
                print(f"\nclustered: mean pairwise cosine {pairwise:.2f}, query's nearest neighbour "
                      f"{float(np.median((queries @ data.T).max(axis=1))):.2f} (median)")
            else:
                data = unit_vectors(rng, n, args.dim)
                queries = unit_vectors(rng, args.queries, args.dim)
            name = f"bench-{kind}-{n}"
            collection = client.create_collection(name, configuration=hnsw_configuration("cosine"), embedding_function=None)
            started = time.perf_counter()
            for i in range(0, n, limit):
                collection.add(ids=[str(j) for j in range(i, min(n, i + limit))], embeddings=data[i : i + limit])
            insert_s = time.perf_counter() - started

            exact_ms, truth = [], []
            for q in queries:
                t0 = time.perf_counter()
                scores = data @ q
                top = np.argpartition(-scores, 10)[:10]
                exact_ms.append((time.perf_counter() - t0) * 1000)
                truth.append(set(top.tolist()))
            brute = statistics.median(exact_ms)
            print(f"\n{kind}, {n:,} vectors: bulk insert {n / insert_s:,.0f} vectors/s ({insert_s:.1f} s, batches of {limit}); "
                  f"numpy brute force {brute:.2f} ms/query (recall 1.000)")
            print("  ef_search   median ms   recall@10   vs brute force")
            for ef in (int(e) for e in args.ef.split(",")):
                collection.modify(configuration={"hnsw": {"ef_search": ef}})
                # Chroma applies a new ef_search only when the index is loaded again.
                SharedSystemClient.clear_system_cache()
                client = chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
                collection = client.get_collection(name)
                collection.query(query_embeddings=queries[:1], n_results=10, include=[])
                latencies, recalls = [], []
                for q, expected in zip(queries, truth, strict=True):
                    t0 = time.perf_counter()
                    found = collection.query(query_embeddings=q[None, :], n_results=10, include=[])
                    latencies.append((time.perf_counter() - t0) * 1000)
                    recalls.append(len(expected & {int(i) for i in found["ids"][0]}) / 10)
                ms, recall = statistics.median(latencies), float(np.mean(recalls))
                mark = " <- engine default" if ef == HNSW_SETTINGS["ef_search"] else ""
                print(f"  {ef:>9}   {ms:>9.2f}   {recall:>9.3f}   {brute / ms:>6.1f}x faster{mark}")
                if kind == "uniform" and n >= GOAL_SIZE and ms <= GOAL_MS and recall >= GOAL_RECALL:
                    met_goal = True
    verdict = "met" if met_goal else "NOT met"
    print(f"\ngoal (<= {GOAL_MS} ms median at {GOAL_SIZE:,} with recall@10 >= {GOAL_RECALL}): {verdict}")


if __name__ == "__main__":
    main()
