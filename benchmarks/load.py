"""Concurrent users: N gradio_client clients x M searches each, across the engines, while the
index is rebuilt again and again; against the same searches from one client, in one run.

Everything runs on 127.0.0.1 and stops by itself: the request count is fixed and a deadline
bounds the run. The CLIP engines use a tiny random CLIP model built locally unless
``--model`` names a real one (the Hub is not reachable from the build machines).

    python benchmarks/load.py [--clients 16] [--searches 10] [--data data] [--model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT

ENGINE_METRICS = [("pixel", "l1"), ("clip", "cosine"), ("chroma", "cosine")]


def one_search(client, query: str, n: int) -> tuple[float, str | None]:  # type: ignore[no-untyped-def]
    from gradio_client import handle_file

    engine, metric = ENGINE_METRICS[n % len(ENGINE_METRICS)]
    started = time.perf_counter()
    try:
        tiles, summary = client.predict(engine, "pixels", metric, 5, [], handle_file(query), "", api_name="/search")
        ok = len(tiles) == 5 and all(t["caption"].startswith(f"#{i + 1} ") for i, t in enumerate(tiles))
        error = None if ok and "5 results" in summary else f"malformed answer from {engine}"
    except Exception as exc:  # every failure counts, whatever its type
        error = f"{engine}: {type(exc).__name__}: {exc}"
    return (time.perf_counter() - started) * 1000, error


def report(name: str, latencies: list[float], errors: list[str], seconds: float) -> float:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    qps = len(latencies) / seconds
    print(f"{name:<28} {len(latencies):>5} searches  {qps:6.1f} queries/s  p50 {statistics.median(ordered):7.1f} ms  "
          f"p99 {p99:7.1f} ms  errors {len(errors)}")
    for error in errors[:5]:
        print(f"    {error}")
    return qps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--searches", type=int, default=10, help="searches per client")
    parser.add_argument("--data", default=str(ROOT / "data"))
    parser.add_argument("--model", default=None, help="CLIP model directory (default: a tiny random one)")
    parser.add_argument("--deadline", type=float, default=300, help="seconds before the run gives up")
    args = parser.parse_args()

    from gradio_client import Client

    from engines import list_image_files
    from engines.testing import build_tiny_clip, free_port
    from ui.config import AppConfig
    from ui.page import build_demo, launch

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = str(build_tiny_clip(Path(tmp) / "tiny-clip"))
        config = AppConfig(data=args.data, model=model, chroma_path=str(Path(tmp) / "chroma"),
                           host="127.0.0.1", port=free_port())
        demo = build_demo(config)
        launch(demo, config, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{config.port}/"
        queries = list_image_files(Path(args.data) / "test")
        total = args.clients * args.searches
        try:
            warm = Client(url, verbose=False)
            for n in range(len(ENGINE_METRICS)):  # build each engine's index before timing
                one_search(warm, queries[0], n)

            started = time.perf_counter()
            results = [one_search(warm, queries[n % len(queries)], n) for n in range(total)]
            sequential = report("1 client, sequential", [r[0] for r in results], [r[1] for r in results if r[1]],
                                time.perf_counter() - started)

            stop = threading.Event()
            reindexes: list[str] = []

            def reindex_loop() -> None:
                client = Client(url, verbose=False)
                while not stop.is_set() and time.perf_counter() - started < args.deadline:
                    for engine, _ in ENGINE_METRICS:
                        try:
                            client.predict(engine, "pixels", api_name="/build_index")
                            reindexes.append(engine)
                        except Exception as exc:
                            reindexes.append(f"error {type(exc).__name__}: {exc}")

            def client_run(c: int) -> list[tuple[float, str | None]]:
                client = Client(url, verbose=False)
                out = []
                for s in range(args.searches):
                    if time.perf_counter() - started > args.deadline:
                        out.append((0.0, "deadline reached"))
                        break
                    out.append(one_search(client, queries[(c + s) % len(queries)], c + s))
                return out

            started = time.perf_counter()
            indexer = threading.Thread(target=reindex_loop, daemon=True)
            indexer.start()
            with ThreadPoolExecutor(max_workers=args.clients) as pool:
                per_client = list(pool.map(client_run, range(args.clients)))
            elapsed = time.perf_counter() - started
            stop.set()
            indexer.join(timeout=60)
            flat = [r for rs in per_client for r in rs]
            concurrent = report(f"{args.clients} clients + re-indexing", [r[0] for r in flat if not r[1]],
                                [r[1] for r in flat if r[1]], elapsed)
            failed = [r for r in reindexes if r.startswith("error")]
            print(f"re-index runs during the load: {len(reindexes) - len(failed)} ok, {len(failed)} failed")
            print(f"throughput ratio, concurrent / sequential: {concurrent / sequential:.2f}x")
        finally:
            demo.close()


if __name__ == "__main__":
    main()
