"""Rates per second from successive snapshots of a node's stats (`redshank top`, `actors --watch`).

Concern: turning the running totals each core publishes (`read_node_stats`, or the admin API's
`/v1/actors`, the same JSON) into rates per second, a short history of them, an order (by depth,
rate or handler time) and a "filling up" verdict per mailbox and actor. Sans-IO: snapshots in,
rows out; no terminal, no clock (elapsed time is the cores' own publish `time`). Must not know how
the snapshots are read or drawn.

A core publishes its block every ~0.5 s: two samples that see the same publish carry the
previous rates over instead of reporting a false zero. A core whose generation changed (it was
restarted) starts its counters again: its first sample after that has no rate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import field
from itertools import pairwise
from typing import Any

from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "SORT_KEYS",
    "ActorRow",
    "CoreRow",
    "MailboxRow",
    "RateTracker",
    "sparkline",
]

SORT_KEYS = ("depth", "rate", "handler")
# A depth that rose in each of this many successive samples marks a mailbox as filling up.
RISING_SAMPLES = 3
_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Iterable[float], width: int | None = None) -> str:
    """One character per value, scaled to the largest (all zeros: the lowest bar)."""
    vals = list(values)
    if width is not None:
        vals = vals[-width:]
    top = max(vals, default=0.0)
    if top <= 0:
        return _SPARKS[0] * len(vals)
    last = len(_SPARKS) - 1
    return "".join(_SPARKS[min(last, round(v / top * last))] if v > 0 else " " for v in vals)


@dataclass(slots=True)
class _Series:
    """The last few values of one counter's rate and one depth."""

    rates: deque[float]
    depths: deque[int]
    rate: float | None = None
    bytes_rate: float | None = None
    handler_ms_s: float | None = None  # handler milliseconds per second: the busy fraction * 1000

    @classmethod
    def new(cls, history: int) -> _Series:
        return cls(deque(maxlen=history), deque(maxlen=RISING_SAMPLES + 1))

    def rising(self) -> bool:
        d = list(self.depths)
        return (len(d) > RISING_SAMPLES and d[-1] > 0
                and all(b > a for a, b in pairwise(d)))


@dataclass(frozen=True, slots=True)
class ActorRow:
    core: int
    name: str
    cls: str
    depth: int
    messages: int
    rate: float | None
    handler_ms_s: float | None
    avg_handler_us: float | None
    failures: int
    status: str
    history: tuple[float, ...]
    filling: bool


@dataclass(frozen=True, slots=True)
class MailboxRow:
    core: int
    peer: int
    alive: bool
    depth: int  # bytes this core has put in its ring to `peer` and `peer` has not yet taken
    capacity: int | None
    overflow: int
    frames_rate: float | None
    bytes_rate: float | None
    history: tuple[float, ...]
    filling: bool

    @property
    def fill(self) -> float | None:
        return self.depth / self.capacity if self.capacity else None


@dataclass(frozen=True, slots=True)
class CoreRow:
    core: int
    pid: int | None
    generation: int | None
    uptime_s: float | None
    pending: int
    error: str | None
    wakeups_rate: float | None
    messages_rate: float | None  # all of the core's actors
    in_bytes_rate: float | None  # from every peer's ring
    out_bytes_rate: float | None
    history: tuple[float, ...]


@dataclass(slots=True)
class RateTracker:
    """Feed it snapshots (`update`); read rows back (`cores`, `mailboxes`, `actors`).

    `capacity(core, peer, generation, peer_generation)` says a ring's size in bytes (None:
    unknown); `fill_fraction` of it, an overflow, or a depth rising RISING_SAMPLES times in a row
    marks a mailbox as filling; an actor's inbox (unbounded) is marked on a rising depth or at
    `depth_warn` messages.
    """

    history: int = 30
    fill_fraction: float = 0.5
    depth_warn: int = 1000
    capacity: Any = None
    stats: dict[str, Any] | None = None
    samples: int = 0
    _prev: dict[int, dict[str, Any]] = field(default_factory=dict)
    _series: dict[tuple[Any, ...], _Series] = field(default_factory=dict)
    _core_rates: dict[int, dict[str, float]] = field(default_factory=dict)

    def update(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        self.samples += 1
        for doc in stats.get("cores", []):
            if "error" in doc or "core" not in doc:
                continue
            core = int(doc["core"])
            prev = self._prev.get(core)
            if prev is not None and prev.get("generation") != doc.get("generation"):
                prev = None  # restarted: counters start again
                for key in [k for k in self._series if k[1] == core]:
                    del self._series[key]
                self._core_rates.pop(core, None)
            dt = None
            if prev is not None:
                dt = float(doc.get("time", 0.0)) - float(prev.get("time", 0.0))
            fresh = dt is not None and dt > 0
            self._update_core(core, doc, prev, dt if fresh else None, fresh or prev is None)
            if prev is None or fresh:
                self._prev[core] = doc

    def _series_for(self, key: tuple[Any, ...]) -> _Series:
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series.new(self.history)
        return s

    def _update_core(self, core: int, doc: dict[str, Any], prev: dict[str, Any] | None,
                     dt: float | None, new_publish: bool) -> None:
        if not new_publish:
            return  # the same publish as last time: keep the rates we have
        prev_actors = {a["name"]: a for a in (prev or {}).get("actors", [])}
        total_msgs = 0.0
        for actor in doc.get("actors", []):
            s = self._series_for(("actor", core, actor["name"]))
            s.depths.append(int(actor.get("depth") or 0))
            before = prev_actors.get(actor["name"])
            if dt is not None and before is not None:
                s.rate = max(0.0, (actor["messages"] - before["messages"]) / dt)
                s.handler_ms_s = max(0.0, (actor["handler_ms"] - before["handler_ms"]) / dt)
                s.rates.append(s.rate)
                total_msgs += s.rate
        prev_boxes = {m["peer"]: m for m in (prev or {}).get("mailboxes", [])}
        in_bytes = out_bytes = 0.0
        for box in doc.get("mailboxes", []):
            s = self._series_for(("mailbox", core, box["peer"]))
            s.depths.append(int(box.get("out_depth") or 0))
            before = prev_boxes.get(box["peer"])
            if dt is not None and before is not None:
                s.rate = max(0.0, (box.get("out_frames", 0) - before.get("out_frames", 0)) / dt)
                s.bytes_rate = max(0.0,
                                   (box.get("out_bytes", 0) - before.get("out_bytes", 0)) / dt)
                s.rates.append(s.bytes_rate)
                out_bytes += s.bytes_rate
                in_bytes += max(0.0, (box.get("in_bytes", 0) - before.get("in_bytes", 0)) / dt)
        s = self._series_for(("core", core))
        if dt is not None and prev is not None:
            s.rates.append(total_msgs)
            self._core_rates[core] = {
                "wakeups": max(0.0, (doc.get("wakeups", 0) - prev.get("wakeups", 0)) / dt),
                "messages": total_msgs, "in_bytes": in_bytes, "out_bytes": out_bytes}

    # -- rows ----------------------------------------------------------------------------------

    def cores(self) -> list[CoreRow]:
        rows = []
        for doc in (self.stats or {}).get("cores", []):
            core = int(doc.get("core", -1))
            if "error" in doc:
                rows.append(CoreRow(core, None, None, None, 0, str(doc["error"]), None, None,
                                    None, None, ()))
                continue
            s = self._series.get(("core", core))
            r = self._core_rates.get(core, {})
            rows.append(CoreRow(
                core=core, pid=doc.get("pid"), generation=doc.get("generation"),
                uptime_s=doc.get("uptime_s"), pending=int(doc.get("pending_requests") or 0),
                error=None, wakeups_rate=r.get("wakeups"), messages_rate=r.get("messages"),
                in_bytes_rate=r.get("in_bytes"), out_bytes_rate=r.get("out_bytes"),
                history=tuple(s.rates) if s else ()))
        return rows

    def actors(self, sort: str = "rate") -> list[ActorRow]:
        rows = []
        for doc in self._live_cores():
            core = int(doc["core"])
            for a in doc.get("actors", []):
                s = self._series.get(("actor", core, a["name"]))
                depth = int(a.get("depth") or 0)
                rate = s.rate if s else None
                avg = None
                if s and s.rate and s.handler_ms_s is not None:
                    avg = s.handler_ms_s * 1000 / s.rate
                rows.append(ActorRow(
                    core=core, name=str(a["name"]), cls=str(a.get("class", "")), depth=depth,
                    messages=int(a.get("messages") or 0), rate=rate,
                    handler_ms_s=s.handler_ms_s if s else None, avg_handler_us=avg,
                    failures=int(a.get("failures") or 0),
                    status=str(a.get("status") or ("" if a.get("alive", True) else "dead")),
                    history=tuple(s.rates) if s else (),
                    filling=depth >= self.depth_warn or bool(s and s.rising())))
        return sorted(rows, key=_actor_key(sort))

    def mailboxes(self, sort: str = "rate") -> list[MailboxRow]:
        rows = []
        for doc in self._live_cores():
            core = int(doc["core"])
            for m in doc.get("mailboxes", []):
                s = self._series.get(("mailbox", core, m["peer"]))
                cap = None
                if self.capacity is not None:
                    cap = self.capacity(core, int(m["peer"]), doc.get("generation"),
                                        m.get("generation"))
                depth = int(m.get("out_depth") or 0)
                overflow = int(m.get("overflow") or 0)
                full = cap is not None and cap > 0 and depth >= self.fill_fraction * cap
                rows.append(MailboxRow(
                    core=core, peer=int(m["peer"]), alive=bool(m.get("alive", True)),
                    depth=depth, capacity=cap, overflow=overflow,
                    frames_rate=s.rate if s else None, bytes_rate=s.bytes_rate if s else None,
                    history=tuple(s.rates) if s else (),
                    filling=full or overflow > 0 or bool(s and s.rising())))
        if sort == "depth":
            return sorted(rows, key=lambda r: (-(r.depth + r.overflow), -(r.bytes_rate or 0)))
        return sorted(rows, key=lambda r: (-(r.bytes_rate or 0), -r.depth, r.core, r.peer))

    def _live_cores(self) -> list[dict[str, Any]]:
        return [d for d in (self.stats or {}).get("cores", []) if "error" not in d]


def _actor_key(sort: str) -> Any:
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {SORT_KEYS}, got {sort!r}")

    def key(r: ActorRow) -> tuple[Any, ...]:
        rate = r.rate or 0.0
        handler = r.handler_ms_s or 0.0
        first = {"depth": (-r.depth, -rate), "rate": (-rate, -handler),
                 "handler": (-handler, -rate)}[sort]
        return (*first, r.core, r.name)

    return key
