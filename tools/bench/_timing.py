"""Timing helpers shared by the benchmarks.

Best-of-N: on a shared 2-core machine the least disturbed repeat is the most repeatable figure;
benchmarks report it next to a baseline measured in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["best_seconds"]


def best_seconds(fn: Callable[[], object], *, number: int, repeat: int) -> float:
    """Best seconds per call over `repeat` rounds of `number` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best
