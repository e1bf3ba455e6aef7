"""The Chroma engine's side of a million photos: the same CLIP-shaped vectors as
``benchmarks/million.py``, in an embedded Chroma collection configured as the engine configures
its own (``hnsw_configuration``), with a year and a camera in each record's metadata.

Measured: insert rate (the engine's batches: the client's largest), the process's memory after
loading, opening the collection again (a restart) and its first query, query p50/p99 and recall@10
against numpy's exact search of the same vectors, the same with a year filter, and 1,000 records
deleted and 1,000 added. With ``--server``, the same through a Chroma server (``chroma run`` on
127.0.0.1, started here; "a restart" restarts the server) and the server process's own memory.

    python benchmarks/million_chroma.py [--rows 1000000] [--queries 100] [--server]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from million import generate, rss_mb

from engines.storage.chroma_db import hnsw_configuration
from engines.storage.chroma_query import nearest_records
from engines.testing import free_port, start_chroma_server


def percentile(times: list[float], q: float) -> float:
    return float(np.percentile(times, q))


class Server:
    """``chroma run`` over ``folder`` on 127.0.0.1 (restartable: a restart opens the same database)."""

    def __init__(self, folder: str) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_chroma_server(Path(self.folder), self.port, timeout_s=300)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=120)
            self.process = None

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--server", action="store_true", help="through a Chroma server instead of embedded")
    args = parser.parse_args()
    import chromadb
    from chromadb.config import Settings

    vectors, years, cameras = generate(args.rows)
    rng = np.random.default_rng(1)
    picked = rng.choice(args.rows, args.queries, replace=False)
    queries = vectors[picked] + rng.standard_normal((args.queries, vectors.shape[1]), dtype=np.float32) * 0.02
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as folder:
        server = Server(folder) if args.server else None

        def connect() -> Any:
            if server is None:
                return chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
            server.start()
            return chromadb.HttpClient(host="127.0.0.1", port=server.port, settings=Settings(anonymized_telemetry=False))

        memory: Callable[[], str] = (lambda: f"RSS {rss_mb():.0f} MB") if server is None else (
            lambda: f"server RSS {server.rss_mb():.0f} MB, this process {rss_mb():.0f} MB")
        try:
            measure(args, connect, memory, server, folder, vectors, years, cameras, queries)
        finally:
            if server is not None:
                server.stop()


def measure(args: argparse.Namespace, connect: Callable[[], Any], memory: Callable[[], str], server: Server | None,
            folder: str, vectors: np.ndarray, years: np.ndarray, cameras: np.ndarray, queries: np.ndarray) -> None:
    from chromadb.api.client import SharedSystemClient

    client = connect()
    collection = client.create_collection("million", configuration=hnsw_configuration("cosine"),
                                          embedding_function=None)
    limit = client.get_max_batch_size()
    started = time.perf_counter()
    for i in range(0, args.rows, limit):
        end = min(args.rows, i + limit)
        collection.add(ids=[str(j) for j in range(i, end)], embeddings=vectors[i:end],
                       metadatas=[{"year": int(years[j]), "camera": int(cameras[j])} for j in range(i, end)])
        if end // 100_000 != i // 100_000:  # the rate as the graph grows
            print(f"  {end:,} inserted after {time.perf_counter() - started:.0f} s; {memory()}", flush=True)
    insert_s = time.perf_counter() - started
    print(f"{args.rows:,} records inserted in {insert_s:.0f} s ({args.rows / insert_s:,.0f}/s, batches of {limit}); "
          f"{memory()}; on disk {sum(p.stat().st_size for p in Path(folder).rglob('*') if p.is_file()) / 1e9:.2f} GB",
          flush=True)

    SharedSystemClient.clear_system_cache()
    if server is not None:
        server.stop()
    started = time.perf_counter()
    client = connect()
    collection = client.get_collection("million")
    collection.query(query_embeddings=queries[:1], n_results=10, include=[])
    print(f"open and first query after a restart: {time.perf_counter() - started:.1f} s; {memory()}", flush=True)

    for label, where in (("image query", None), ("with a year filter (2021)", {"year": 2021})):
        mask = np.ones(args.rows, dtype=bool) if where is None else years == 2021
        times, recalls = [], []
        for q in queries:
            started = time.perf_counter()
            found = collection.query(query_embeddings=q[None, :], n_results=10, where=where, include=[])
            times.append((time.perf_counter() - started) * 1000)
            scores = np.where(mask, vectors @ q, -np.inf)
            truth = set(np.argpartition(-scores, 10)[:10].tolist())
            recalls.append(len(truth & {int(i) for i in found["ids"][0]}) / 10)
        print(f"{label}: p50 {percentile(times, 50):.1f} ms, p99 {percentile(times, 99):.1f} ms, "
              f"recall@10 {statistics.mean(recalls):.3f}", flush=True)

    # The Chroma engine's own path (engines/storage/chroma_query.py): a filter keeping many records
    # is answered from the graph unfiltered, asked for more, and cut to the kept ones.
    kept_mask = years == 2021
    times, recalls = [], []
    for q in queries:
        started = time.perf_counter()
        found = nearest_records(collection, q, 10, "cosine", {"year": 2021}, args.rows)
        times.append((time.perf_counter() - started) * 1000)
        truth = set(np.argpartition(-np.where(kept_mask, vectors @ q, -np.inf), 10)[:10].tolist())
        recalls.append(len(truth & {int(i) for i in found["ids"][0]}) / 10)
    print(f"with a year filter, as the Chroma engine asks: p50 {percentile(times, 50):.1f} ms, "
          f"p99 {percentile(times, 99):.1f} ms, recall@10 {statistics.mean(recalls):.3f}", flush=True)

    started = time.perf_counter()
    collection.delete(ids=[str(j) for j in range(1000)])
    deleted_s = time.perf_counter() - started
    started = time.perf_counter()
    collection.add(ids=[f"new{j}" for j in range(1000)], embeddings=vectors[:1000],
                   metadatas=[{"year": 2025, "camera": 0}] * 1000)
    print(f"1,000 deleted in {deleted_s:.1f} s, 1,000 added in {time.perf_counter() - started:.1f} s; {memory()}")


if __name__ == "__main__":
    main()
