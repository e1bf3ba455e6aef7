"""Filters: what a date filter adds to a search over 100,000 indexed photos (goal: at most
5 ms), and where the Chroma engine's switch from HNSW with a ``where`` clause to an exact
search of the kept rows pays (``engines.chroma.EXACT_BELOW``).

    python benchmarks/filters.py [--photos 100000] [--chroma-rows 20000]

Part 1 runs what the in-memory engines rank with (the filter's row mask from the photos'
table, then ``VectorIndex.nearest`` among the rows kept) on 100,000 rows of ViT-B/32's size (512), with and without a date
filter; the photos' details are the table the engine keeps once their headers were read at
indexing (dates spread over 2015-2025, 8 cameras, a third with a position).

Part 2 fills an embedded Chroma collection with 20,000 such rows (clustered, like real image
embeddings) and, for filters keeping 0.1% to 50% of them, times Chroma's filtered HNSW query
and the engine's exact path (the kept ids, their vectors, numpy), and measures HNSW's recall
of the exact top 10.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from _common import median_ms
from engines import Filter
from engines.galleries.photo_info import PhotoTable
from engines.storage.chroma_db import hnsw_configuration
from engines.storage.chroma_query import EXACT_BELOW, exact_records
from engines.vector_index import VectorIndex

GOAL_MS = 5.0
CAMERAS = ("Apple iPhone 13", "Apple iPhone 15 Pro", "Google Pixel 7", "Samsung SM-S911B", "Canon EOS R6",
           "Sony ILCE-7M3", "Fujifilm X-T4", "")


def clustered(rng: np.random.Generator, n: int, dim: int = 512, centres: int = 300) -> np.ndarray:
    """Unit vectors in ``centres`` clusters: image embeddings are far from uniform."""
    middle = rng.normal(size=(centres, dim)).astype(np.float32)
    vectors = middle[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def gallery_with(vectors: np.ndarray, rng: np.random.Generator) -> tuple[VectorIndex, np.ndarray, PhotoTable]:
    """(the index of ``vectors``, each row's class, the photos' table), as a finished build leaves them."""
    n = len(vectors)
    labels = np.array(["photos"] * n, dtype=object)
    start, end = datetime(2015, 1, 1, tzinfo=UTC).timestamp(), datetime(2025, 12, 31, tzinfo=UTC).timestamp()
    taken = rng.uniform(start, end, n)
    taken[rng.random(n) < 0.05] = np.nan  # no date at all
    table = PhotoTable(taken, rng.random(n) < 0.9, np.array(CAMERAS, dtype=object)[rng.integers(0, len(CAMERAS), n)],
                       rng.random(n) < 0.33)
    return VectorIndex(vectors), labels, table


def part_one(photos: int, rng: np.random.Generator) -> None:
    index, labels, table = gallery_with(clustered(rng, photos), rng)
    queries = clustered(rng, 20)
    year = Filter(taken=("2023-01-01", "2023-12-31"))
    summer = Filter(taken=("2023-06-01", "2023-08-31"), camera="Apple iPhone 13")

    def ranked(q: np.ndarray, chosen: Filter | None) -> object:
        rows = None if chosen is None else np.flatnonzero(chosen.keeps(labels, table))
        return index.nearest(q, 10, "cosine", rows)

    def run(chosen: Filter | None) -> float:
        return median_ms(lambda: [ranked(q, chosen) for q in queries], 5) / len(queries)

    plain, dated, narrow = run(None), run(year), run(summer)
    kept = int(year.keeps(labels, table).sum())
    mask_ms = median_ms(lambda: year.keeps(labels, table), 20)
    narrow_kept = int(summer.keeps(labels, table).sum())
    added = dated - plain
    print(f"{photos:,} photos, top 10 by cosine: no filter {plain:.2f} ms; photos from 2023 ({kept:,} kept) "
          f"{dated:.2f} ms (adds {added:+.2f} ms, {dated / plain:.2f}x; the date mask alone {mask_ms:.2f} ms); summer 2023 on one camera "
          f"({narrow_kept:,} kept) {narrow:.2f} ms; goal: a date filter adds <= {GOAL_MS:.0f} ms: "
          f"{'met' if added <= GOAL_MS else 'NOT met'}")


def part_two(rows: int, rng: np.random.Generator) -> None:
    import chromadb

    vectors = clustered(rng, rows)
    queries = clustered(rng, 20)
    with tempfile.TemporaryDirectory() as tmp:
        client = chromadb.PersistentClient(path=str(Path(tmp) / "db"))
        collection = client.create_collection("filters", configuration=hnsw_configuration("cosine"))  # the engine's
        started = time.perf_counter()
        order = rng.permutation(rows)  # the filtered field is not the insertion order
        for s in range(0, rows, 2000):
            ids = range(s, min(rows, s + 2000))
            collection.add(ids=[str(i) for i in ids], embeddings=vectors[list(ids)],
                           metadatas=[{"taken": float(order[i])} for i in ids])
        print(f"Chroma (embedded), {rows:,} rows of 512 filled in {time.perf_counter() - started:.0f} s; "
              f"top 10, {len(queries)} queries; EXACT_BELOW = {EXACT_BELOW:,} rows")
        print(f"{'kept':>14} | {'HNSW + where':>12} | {'recall@10':>9} | {'exact':>8} | {'recall@10':>9} | faster")
        taken = order.astype(np.float64)
        for share in (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0):
            where = {"taken": {"$lt": float(round(rows * share))}}
            inside = np.flatnonzero(taken < round(rows * share))
            hnsw_s = exact_s = 0.0
            recall: dict[str, list[float]] = {"hnsw": [], "exact": []}
            for q in queries:
                truth = {str(i) for i in inside[np.argsort(-(vectors[inside] @ q), kind="stable")[:10]]}
                started = time.perf_counter()
                if share < 1.0:  # the engine's exact path: the kept ids, then their vectors
                    ids = collection.get(where=where, include=[])["ids"]
                    exact = exact_records(collection, ids, q, 10, "cosine")["ids"][0]
                    recall["exact"].append(len(set(exact) & truth) / len(truth))
                exact_s += time.perf_counter() - started
                started = time.perf_counter()
                found = collection.query(query_embeddings=[q], n_results=10, where=where if share < 1.0 else None,
                                         include=["metadatas", "distances"])["ids"][0]
                hnsw_s += time.perf_counter() - started
                recall["hnsw"].append(len(set(found) & truth) / len(truth))
            hnsw_ms, exact_ms = 1000 * hnsw_s / len(queries), 1000 * exact_s / len(queries)
            exact_text = f"{exact_ms:>5.1f} ms | {np.mean(recall['exact']):>9.3f}" if share < 1.0 else f"{'-':>8} | {'-':>9}"
            print(f"{len(inside):>6,} ({share:>5.1%}) | {hnsw_ms:>9.1f} ms | {np.mean(recall['hnsw']):>9.3f} | "
                  f"{exact_text} | {('exact' if exact_ms <= hnsw_ms else 'HNSW') if share < 1.0 else '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--chroma-rows", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    part_one(args.photos, rng)
    part_two(args.chroma_rows, rng)


if __name__ == "__main__":
    main()
