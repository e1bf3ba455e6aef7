"""Work off the search path: duplicates runs and maps on one worker at the lowest priority.

Searches must not wait behind these: on two cores, sixteen clients saw search p99 go from
~2 s to 6.6 s beside duplicates and maps (benchmarks/load.py). The worker is one thread, at
the lowest CPU priority (nice 19, inherited by the OpenMP threads it starts), with BLAS held
to one thread while it works, so a search's thread gets a core first.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class BackgroundWorker:
    """One low-priority thread; ``run(work)`` waits for ``work`` to finish there."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="background", initializer=_lowest_priority)
        weakref.finalize(self, self._pool.shutdown, wait=False)

    def run(self, work: Callable[[], T]) -> T:
        return self._pool.submit(_with_few_threads, work).result()


def _lowest_priority() -> None:
    """Make the calling thread the last to get a core (Linux: nice is per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (OSError, AttributeError):  # another system: the one worker still bounds the load
        pass


def _with_few_threads(work: Callable[[], T]) -> T:
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return work()
    finally:
        release_memory()


def release_memory() -> None:
    """Hand memory freed by a large job back to the system (glibc keeps it otherwise, and the
    server's RSS grows with every duplicates run and map)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
