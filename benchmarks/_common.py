"""Shared by the benchmark scripts: where the aio dataset is, and timing helpers."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIO = Path(os.environ.get("IMAGE_SEARCH_AIO") or ROOT.parent / "shared" / "datasets" / "aio").resolve()


def require_aio() -> Path:
    """The aio dataset folder, or exit with the reason (it is never committed here)."""
    if not (AIO / "train").is_dir():
        print(f"SKIP: the aio dataset is not at {AIO}; it is read from ../shared or $IMAGE_SEARCH_AIO, never committed")
        raise SystemExit(0)
    return AIO


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeat`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
