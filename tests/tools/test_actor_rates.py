"""Rates per second from successive stats snapshots (`tools/actor_rates.py`): sans-IO."""

from __future__ import annotations

from typing import Any

import pytest

from redshank.tools.actor_rates import RateTracker, sparkline


def _snap(t: float, *, gen: int = 1, msgs: int = 0, handler_ms: float = 0.0, depth: int = 0,
          out_bytes: int = 0, ring_depth: int = 0, overflow: int = 0) -> dict[str, Any]:
    core = {"core": 0, "generation": gen, "pid": 1, "time": t, "uptime_s": t,
            "pending_requests": 0, "wakeups": int(t * 10),
            "mailboxes": [{"peer": 1, "alive": True, "generation": 1, "overflow": overflow,
                           "out_frames": out_bytes // 100, "out_bytes": out_bytes,
                           "out_depth": ring_depth, "in_frames": 0, "in_bytes": 0,
                           "in_depth": 0}],
            "actors": [
                {"name": "busy", "class": "A", "depth": depth, "messages": msgs,
                 "handler_ms": handler_ms, "failures": 0},
                {"name": "idle", "class": "B", "depth": 5, "messages": 0, "handler_ms": 0.0,
                 "failures": 0}]}
    return {"node_dir": "/n", "supervisor_pid": 1, "cores": [core, {"core": 1, "error": "x"}]}


def test_rates_per_second_from_the_cores_publish_times() -> None:
    tr = RateTracker()
    tr.update(_snap(10.0))
    assert tr.actors()[0].rate is None  # one sample: no rate yet
    tr.update(_snap(12.0, msgs=400, handler_ms=100.0, out_bytes=20_000))
    busy = next(a for a in tr.actors() if a.name == "busy")
    assert busy.rate == 200.0 and busy.handler_ms_s == 50.0 and busy.avg_handler_us == 250.0
    box = tr.mailboxes()[0]
    assert box.bytes_rate == 10_000.0 and box.frames_rate == 100.0
    core0, core1 = tr.cores()
    assert core0.messages_rate == 200.0 and core0.out_bytes_rate == 10_000.0
    assert core0.wakeups_rate == 10.0 and core1.error == "x"
    # The same publish seen again carries the rates over (no false zero).
    tr.update(_snap(12.0, msgs=400, handler_ms=100.0, out_bytes=20_000))
    assert next(a for a in tr.actors() if a.name == "busy").rate == 200.0


def test_a_restarted_core_starts_its_counters_again() -> None:
    tr = RateTracker()
    tr.update(_snap(10.0, msgs=1000))
    tr.update(_snap(11.0, gen=2, msgs=3))
    assert next(a for a in tr.actors() if a.name == "busy").rate is None
    tr.update(_snap(12.0, gen=2, msgs=13))
    assert next(a for a in tr.actors() if a.name == "busy").rate == 10.0


@pytest.mark.parametrize(("sort", "first"), [("rate", "busy"), ("handler", "busy"),
                                             ("depth", "idle")])
def test_sorted_busiest_first(sort: str, first: str) -> None:
    tr = RateTracker()
    tr.update(_snap(1.0))
    tr.update(_snap(2.0, msgs=10, handler_ms=1.0, depth=1))
    assert tr.actors(sort)[0].name == first
    with pytest.raises(ValueError):
        tr.actors("name")


def test_filling_on_rising_depth_capacity_or_overflow() -> None:
    tr = RateTracker(capacity=lambda *_: 1000, fill_fraction=0.5)
    for i, d in enumerate((0, 1, 2, 3)):
        tr.update(_snap(float(i), depth=d, ring_depth=100 * d))
        assert next(a for a in tr.actors() if a.name == "busy").filling is (i == 3)
    assert tr.mailboxes()[0].filling  # rising too
    tr.update(_snap(5.0, depth=3, ring_depth=300))  # stopped rising, below half
    assert not tr.mailboxes()[0].filling and tr.mailboxes()[0].fill == 0.3
    tr.update(_snap(6.0, ring_depth=600))
    assert tr.mailboxes()[0].filling  # past half its capacity
    tr.update(_snap(7.0, overflow=2))
    assert tr.mailboxes()[0].filling  # frames waiting for room
    tr = RateTracker(depth_warn=5)
    tr.update(_snap(1.0))
    assert next(a for a in tr.actors() if a.name == "idle").filling


def test_sparkline() -> None:
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([1, 2, 4, 8]) == "▂▃▅█"
    assert sparkline([100, 0, 8, 4], width=2) == "█▅"
