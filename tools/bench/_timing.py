"""Timing helpers shared by the benchmarks.

Best-of-N: on a shared 2-core machine the least disturbed repeat is the most repeatable figure;
benchmarks report it next to a baseline measured in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["best_seconds", "wait_until"]


def best_seconds(fn: Callable[[], object], *, number: int, repeat: int) -> float:
    """Best seconds per call over `repeat` rounds of `number` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


class _Pollable(Protocol):
    def poll(self, timeout: float = ...) -> int: ...


def wait_until(due: float, producer: _Pollable) -> None:
    """Until `time.perf_counter()` reaches `due`, serving `producer`'s delivery reports.

    Whole milliseconds in `producer.poll` (it blocks, and returns early on a report), the rest
    of a millisecond in `time.sleep`: confluent-kafka truncates a poll timeout to whole
    milliseconds, so `poll(0.0004)` is `poll(0)`, and a pacing loop of those spins a CPU (on
    this 2-core machine, the share of one the brokers being measured then go without)."""
    while (now := time.perf_counter()) < due:
        if due - now >= 0.001:
            producer.poll(0.001)
        else:
            time.sleep(due - now)
