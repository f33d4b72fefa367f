"""A flood of one log event costs one line at once and one summary line per interval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redshank.actors._log_summary import LogSummary


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))


def test_first_is_logged_then_counts_by_reason_once_per_interval() -> None:
    log = _Log()
    timers: list[Callable[[], None]] = []
    summary = LogSummary(log, "connection_closed", interval_s=10,
                         schedule=lambda _delay, fn: timers.append(fn))
    summary.record("bad_frame", error="size -5")
    assert log.lines == [("connection_closed", {"reason": "bad_frame", "error": "size -5"})]
    for _ in range(10_000):
        summary.record("bad_frame", error="x")
    for _ in range(3):
        summary.record("frame_deadline")
    assert len(log.lines) == 1 and len(timers) == 1
    timers.pop()()  # the interval ends
    assert log.lines[1] == ("connection_closed_summary", {
        "count": 10_003, "interval_s": 10, "by_reason": {"bad_frame": 10_000,
                                                          "frame_deadline": 3}})
    summary.record("bad_frame")  # still inside the next (busy) window: counted
    assert len(log.lines) == 2
    timers.pop()()
    assert log.lines[2][1]["by_reason"] == {"bad_frame": 1}
    timers.pop()()  # a quiet interval: no line, the window closes
    assert len(log.lines) == 3 and timers == []
    summary.record("idle")  # after a quiet interval: logged at once again
    assert log.lines[3] == ("connection_closed", {"reason": "idle"})
