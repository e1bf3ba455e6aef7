"""Shared by the benchmark scripts: where the aio dataset is, and timing helpers."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AIO = (ROOT.parent / "shared" / "datasets" / "aio").resolve()


def require_aio() -> Path:
    """The aio dataset folder, or exit with the reason (it is never committed here)."""
    if not (AIO / "train").is_dir():
        print(f"SKIP: the aio dataset is not at {AIO}; it is read from ../shared, never committed")
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
