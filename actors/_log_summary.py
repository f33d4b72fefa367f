"""One log event that may come in floods (a connection closed for bad input, a failing request),
summarised: the first occurrence is logged at once with its details, the ones that follow within
`interval_s` are counted by reason and logged as one `<event>_summary` line per interval.

Concern: bounding the log lines a burst of one event costs (librdkafka reconnects ~20 times a
second after a failure, notes G22; a flood of bad clients would otherwise cost one line per
connection, each as expensive as a request). Must not know: connections, Kafka.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["LogSummary"]

Schedule = Callable[[float, Callable[[], None]], Any]


def _call_later(delay: float, fn: Callable[[], None]) -> Any:
    return asyncio.get_running_loop().call_later(delay, fn)


class LogSummary:
    """One per event and process (each core is a process). `schedule(delay, fn)` runs `fn`
    later on the loop (`loop.call_later` by default; a test passes its own)."""

    def __init__(self, log: Any, event: str, *, level: str = "info", interval_s: float = 10.0,
                 schedule: Schedule = _call_later) -> None:
        self.log = log
        self.event = event
        self.level = level
        self.interval_s = interval_s
        self.schedule = schedule
        self.counts: Counter[str] = Counter()
        self._window_open = False

    def record(self, reason: str, **details: Any) -> None:
        if not self._window_open:
            self._window_open = True
            getattr(self.log, self.level)(self.event, reason=reason, **details)
            self.schedule(self.interval_s, self._window_ended)
            return
        self.counts[reason] += 1

    def _window_ended(self) -> None:
        if not self.counts:
            self._window_open = False  # quiet: the next one is logged at once again
            return
        total = sum(self.counts.values())
        getattr(self.log, self.level)(f"{self.event}_summary", count=total,
                                      interval_s=self.interval_s,
                                      by_reason=dict(self.counts.most_common()))
        self.counts.clear()
        self.schedule(self.interval_s, self._window_ended)  # still busy: one line per interval
