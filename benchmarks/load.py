"""Concurrent users against the app on 127.0.0.1, in two parts, in one run.

1. Searches alone: N gradio_client clients x M searches across the engines while the index
   is rebuilt again and again, against the same searches from one client.
2. A mixed workload in rounds: searching clients beside clients that find duplicates, draw
   the gallery map, ask why a result matched, and switch between picked models over and
   over (the heavy requests; each model picked is loaded, and the least recently used of
   more than two is unloaded). After each round it prints the
   searches' p50/p99 latency and the server's resident memory (RSS), against searches with
   no heavy clients measured first in the same run. Goals: p99 under load <= 2 s, RSS flat
   (within 10%) from round 2 to round 3.

Clients speak Gradio's REST API over HTTP (``/gradio_api/call/<endpoint>``), uploading each
query file once: a ``gradio_client.Client`` costs ~350 ms of client-side work per call on a
2-core machine (a search answers in ~65 ms over plain HTTP), so sixteen of them measured
mostly themselves. The server runs as its own process (``python app.py``), so its RSS is its own. Everything
stops by itself: the rounds are timed and a deadline bounds the first part. The CLIP
engines use a tiny random CLIP model built locally unless ``--model`` names a real one
(the Hub is not reachable from the build machines). The gallery is aio where it is
present (595 photos), else the demo gallery.

    python benchmarks/load.py [--clients 16] [--searches 10] [--rounds 3] [--round-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import AIO, ROOT

ENGINE_METRICS = [("pixel", "l1"), ("clip", "cosine"), ("chroma", "cosine")]


class Client:
    """One user of the app's REST API: ``predict(api_name=..., **values)`` like gradio_client's."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=600)
        # One session per client, as a browser tab has (a call without one makes Gradio set up
        # a new session each time: a fifth of the server's time went there).
        self.session = uuid.uuid4().hex
        self._uploaded: dict[str, dict[str, object]] = {}

    def file(self, path: str) -> dict[str, object]:
        """``path`` uploaded once, as the API's file value."""
        if path not in self._uploaded:
            with open(path, "rb") as handle:
                (on_server,) = self.http.post(f"{self.url}/gradio_api/upload", files={"files": handle}).json()
            self._uploaded[path] = {"path": on_server, "meta": {"_type": "gradio.FileData"}}
        return self._uploaded[path]

    def predict(self, *, api_name: str, **given: object) -> object:
        """The endpoint's answer; keywords are its parameters (the rest take their defaults)."""
        name = api_name.strip("/")
        if not hasattr(self, "_parameters"):
            info = self.http.get(f"{self.url}/gradio_api/info").json()["named_endpoints"]
            self._parameters = {endpoint: spec["parameters"] for endpoint, spec in info.items()}
        values = [given.get(p["parameter_name"], p.get("parameter_default")) for p in self._parameters[api_name]]
        body = {"data": values, "session_hash": self.session}
        event = self.http.post(f"{self.url}/gradio_api/call/{name}", json=body).json()["event_id"]
        stream = self.http.get(f"{self.url}/gradio_api/call/{name}/{event}").text
        kind, _, data = stream.rpartition("event: ")[2].partition("\n")
        if kind.strip() != "complete":
            raise RuntimeError(f"{name}: {stream[-300:]}")
        (answer,) = json.loads(data.strip().removeprefix("data:").strip())
        return answer


def one_search(client: Client, query: str, n: int) -> tuple[float, str | None]:
    engine, metric = ENGINE_METRICS[n % len(ENGINE_METRICS)]
    started = time.perf_counter()
    try:
        found = client.predict(image=client.file(query), engine=engine, metric=metric, k=5, api_name="/search")
        ranks = [r["rank"] for r in found["results"]]  # type: ignore[index]
        error = None if ranks == [1, 2, 3, 4, 5] else f"malformed answer from {engine}"
    except Exception as exc:  # noqa: BLE001 - every failure counts, whatever its type
        error = f"{engine}: {type(exc).__name__}: {exc}"
    return (time.perf_counter() - started) * 1000, error


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] if ordered else float("nan")


def report(name: str, latencies: list[float], errors: list[str], seconds: float) -> float:
    latencies = latencies or [float("nan")]
    qps = len(latencies) / seconds
    print(f"{name:<34} {len(latencies):>5} searches  {qps:6.1f} queries/s  p50 {statistics.median(latencies):7.1f} ms  "
          f"p99 {percentile(latencies, 0.99):7.1f} ms  errors {len(errors)}")
    for error in errors[:5]:
        print(f"    {error}")
    return qps


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_server(data: str, model: str, scratch: Path, port: int, models_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_CACHE_HOME": str(scratch / "cache"), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "TMPDIR": str(scratch / "tmp")}
    (scratch / "tmp").mkdir()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--data", data, "--model", model, "--port", str(port),
         "--chroma-path", str(scratch / "chroma"), "--models-dir", str(models_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=open(scratch / "server.log", "wb"),
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"the app did not start: {(scratch / 'server.log').read_text()[-2000:]}") from None
            time.sleep(0.5)


def searches_alone(url: str, queries: list[str], clients: int, searches: int, deadline: float) -> None:
    """Part 1: concurrent searches while the index is rebuilt, against one sequential client."""
    total = clients * searches
    warm = Client(url)
    for n in range(len(ENGINE_METRICS)):  # build each engine's index before timing
        one_search(warm, queries[0], n)
    started = time.perf_counter()
    results = [one_search(warm, queries[n % len(queries)], n) for n in range(total)]
    sequential = report("1 client, sequential", [r[0] for r in results], [r[1] for r in results if r[1]],
                        time.perf_counter() - started)
    stop = threading.Event()
    reindexes: list[str] = []

    def reindex_loop() -> None:
        client = Client(url)
        while not stop.is_set() and time.perf_counter() - started < deadline:
            for engine, _ in ENGINE_METRICS:
                try:
                    client.predict(engine=engine, api_name="/build_index")
                    reindexes.append(engine)
                except Exception as exc:  # noqa: BLE001 - any failure is counted and reported
                    reindexes.append(f"error {type(exc).__name__}: {exc}")

    def client_run(c: int) -> list[tuple[float, str | None]]:
        client = Client(url)
        out = []
        for s in range(searches):
            if time.perf_counter() - started > deadline:
                out.append((0.0, "deadline reached"))
                break
            out.append(one_search(client, queries[(c + s) % len(queries)], c + s))
        return out

    started = time.perf_counter()
    indexer = threading.Thread(target=reindex_loop, daemon=True)
    indexer.start()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        per_client = list(pool.map(client_run, range(clients)))
    elapsed = time.perf_counter() - started
    stop.set()
    indexer.join(timeout=60)
    flat = [r for rs in per_client for r in rs]
    concurrent = report(f"{clients} clients + re-indexing", [r[0] for r in flat if not r[1]],
                        [r[1] for r in flat if r[1]], elapsed)
    failed = [r for r in reindexes if r.startswith("error")]
    print(f"re-index runs during the load: {len(reindexes) - len(failed)} ok, {len(failed)} failed")
    print(f"throughput ratio, concurrent / sequential: {concurrent / sequential:.2f}x")


def mixed_rounds(url: str, queries: list[str], server: subprocess.Popen[bytes], args: argparse.Namespace,
                 scratch: Path, models: list[str]) -> None:
    """Part 2: searching clients beside duplicates, map, explaining and model-switching clients."""
    phash = {"features": "phash"}
    heavy_kinds: list[tuple[str, dict[str, object]]] = [
        ("duplicates", {"engine": "pixel", "options": phash}), ("duplicates", {"engine": "clip"}),
        ("gallery_map", {"engine": "pixel"}), ("gallery_map", {"engine": "clip"}),
    ][: args.heavy]
    heavy_kinds += [("explain", {"engine": engine, "rank": 1}) for engine in ("pixel", "clip")] * args.explain
    heavy_kinds += [("switch", {"engine": "clip"})] * args.switch

    def run_round(seconds: float, heavy: bool) -> tuple[list[float], list[str], int]:
        stop = time.perf_counter() + seconds
        done: list[int] = []

        def heavy_client(kind: tuple[str, dict[str, object]]) -> None:
            client = Client(url)
            api, values = kind
            step = 0
            while time.perf_counter() < stop:
                call = dict(values)
                if api == "duplicates":  # a new threshold each time, as a user moving the slider
                    call["threshold"] = [8.0, 10.0, 12.0][step % 3] if call["engine"] == "pixel" else [0.9, 0.95, 0.98][step % 3]
                if api == "explain":
                    call["image"] = client.file(queries[step % len(queries)])
                if api == "switch":  # a visitor picking one model after another, then searching
                    call.update(text="a photo", k=5, options={"model": models[step % len(models)]})
                try:
                    client.predict(**call, api_name="/search" if api == "switch" else f"/{api}")
                    done.append(1)
                except Exception as exc:  # noqa: BLE001 - any failure is counted and reported
                    print(f"    {api}: {type(exc).__name__}: {exc}")
                step += 1

        def search_client(c: int) -> list[tuple[float, str | None]]:
            client = Client(url)
            out, s = [], 0
            while time.perf_counter() < stop:
                out.append(one_search(client, queries[(c + s) % len(queries)], c + s))
                s += 1
            return out

        searchers = args.clients - (len(heavy_kinds) if heavy else 0)
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            heavies = [pool.submit(heavy_client, kind) for kind in heavy_kinds] if heavy else []
            per_client = list(pool.map(search_client, range(searchers)))
            for future in heavies:
                future.result()
        flat = [r for rs in per_client for r in rs]
        return [r[0] for r in flat if not r[1]], [r[1] for r in flat if r[1]], len(done)

    Client(url).predict(engine="clip", api_name="/duplicates")  # indexes built
    latencies, errors, _ = run_round(args.round_seconds / 2, heavy=False)
    report(f"baseline: {args.clients} searching clients", latencies, errors, args.round_seconds / 2)
    print(f"    server RSS {rss_mb(server.pid):.0f} MB")
    rss = []
    for number in range(1, args.rounds + 1):
        latencies, errors, heavy_done = run_round(args.round_seconds, heavy=True)
        rss.append(rss_mb(server.pid))
        report(f"round {number}: {args.clients - len(heavy_kinds)} search + {len(heavy_kinds)} heavy", latencies,
               errors, args.round_seconds)
        files = sum(1 for _ in (scratch / "tmp").rglob("*.csv"))
        print(f"    {heavy_done} heavy requests (duplicates, maps, explanations, model switches); server RSS {rss[-1]:.0f} MB; CSV files left in its temp folder: {files}")
    if len(rss) >= 3:
        print(f"RSS round {len(rss)} / round {len(rss) - 1}: {rss[-1] / rss[-2]:.3f} (goal within 0.90-1.10)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--searches", type=int, default=10, help="searches per client (part 1)")
    parser.add_argument("--heavy", type=int, default=4, help="duplicates and map clients among them (part 2)")
    parser.add_argument("--explain", type=int, default=1, help="pairs of explaining clients (pixel, CLIP) (part 2)")
    parser.add_argument("--switch", type=int, default=1, help="clients switching between 3 picked models (part 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-seconds", type=float, default=60)
    parser.add_argument("--data", default=str(AIO if (AIO / "train").is_dir() else ROOT / "data"))
    parser.add_argument("--model", default=None, help="CLIP model directory (default: a tiny random one)")
    parser.add_argument("--deadline", type=float, default=300, help="seconds before part 1 gives up")
    parser.add_argument("--skip-part-1", action="store_true")
    args = parser.parse_args()

    from engines import list_image_files
    from engines.testing import build_tiny_clip, free_port

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        model = args.model or str(build_tiny_clip(scratch / "tiny-clip"))
        # Three more models a visitor can pick (tiny random ones: switching costs their loads).
        models = [str(build_tiny_clip(scratch / "models" / f"picked-{n}", seed=n + 1)) for n in range(3)]
        port = free_port()
        server = start_server(args.data, model, scratch, port, scratch / "models")
        url = f"http://127.0.0.1:{port}/"
        queries = list_image_files(Path(args.data) / "test")
        print(f"gallery {args.data}; server pid {server.pid}")
        try:
            if not args.skip_part_1:
                searches_alone(url, queries, args.clients, args.searches, args.deadline)
            mixed_rounds(url, queries, server, args, scratch, models)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
