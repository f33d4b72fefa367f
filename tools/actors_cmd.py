"""`redshank actors`: every core's mailboxes and actors of a running node, as a table or JSON.

A node is found by its directory (`--node-dir`, the directory given to the supervisor /
`redshank start`): `node.json` there names the shared-memory prefix, and each core publishes a
read-only stats block (`actors/runtime/stats_block.py`) that this command reads without disturbing
the cores. With `--watch SECS` each refresh shows rates per second since the previous one
(messages, handler time, ring frames and bytes; `tools/actor_rates.py`), actors ordered by
`--sort depth|rate|handler`, busiest first; `redshank top` is the full-screen view of the same.
A node that is down (its supervisor gone, e.g. killed with SIGKILL) is an error: exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from redshank.actors.runtime.node_stats import NodeNotRunningError, read_node_stats
from redshank.tools.actor_rates import SORT_KEYS, RateTracker

__all__ = ["main", "render", "render_rates"]

_MAILBOX_COLS = (
    "peer",
    "alive",
    "out_frames",
    "out_bytes",
    "out_depth",
    "in_frames",
    "in_bytes",
    "in_depth",
    "overflow",
)
_ACTOR_COLS = ("name", "class", "depth", "messages", "handler_ms", "failures", "status")


def _table(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> list[str]:
    cells = [[_fmt(row.get(c)) for c in cols] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return lines


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render(stats: dict[str, Any]) -> str:
    lines = [f"node {stats['node_dir']} (supervisor pid {stats['supervisor_pid']})"]
    for core in stats["cores"]:
        if "error" in core:
            lines.append(f"core {core['core']}: {core['error']}")
            continue
        lines.append(
            f"core {core['core']}  gen {core['generation']}  pid {core['pid']}  "
            f"uptime {core['uptime_s']:.0f}s  pending {core['pending_requests']}  "
            f"sleeping {core['sleeping']}  wakeups {core['wakeups']}  "
            f"lost_wakeups {core['lost_wakeups']}"
        )
        lines += _table(core["mailboxes"], _MAILBOX_COLS)
        lines += _table(core["actors"], _ACTOR_COLS)
    return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_rates(tracker: RateTracker, sort: str) -> str:
    """A refresh of `--watch`: per second since the previous sample (`-`: not known yet)."""
    stats = tracker.stats or {}
    lines = [f"node {stats.get('node_dir')} (supervisor pid {stats.get('supervisor_pid')})  "
             f"rates per second, actors by {sort}"]
    for c in tracker.cores():
        if c.error is not None:
            lines.append(f"core {c.core}: {c.error}")
            continue
        lines.append(f"core {c.core}  gen {c.generation}  pid {c.pid}  "
                     f"uptime {c.uptime_s or 0:.0f}s  pending {c.pending}  "
                     f"msg/s {_rate(c.messages_rate)}  wakeups/s {_rate(c.wakeups_rate)}")
    boxes = [{"core": m.core, "peer": m.peer, "alive": m.alive, "depth": m.depth,
              "overflow": m.overflow, "frames/s": _rate(m.frames_rate),
              "bytes/s": _rate(m.bytes_rate), "": "filling" if m.filling else ""}
             for m in tracker.mailboxes(sort)]
    lines += _table(boxes, ("core", "peer", "alive", "depth", "overflow", "frames/s", "bytes/s",
                            ""))
    actors = [{"core": a.core, "name": a.name, "depth": a.depth, "msg/s": _rate(a.rate),
               "handler_ms/s": _rate(a.handler_ms_s), "messages": a.messages,
               "failures": a.failures, "status": a.status or None,
               "": "filling" if a.filling else ""} for a in tracker.actors(sort)]
    lines += _table(actors, ("core", "name", "depth", "msg/s", "handler_ms/s", "messages",
                             "failures", "status", ""))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank actors", description=__doc__)
    parser.add_argument("--node-dir", required=True, help="the node's directory")
    parser.add_argument("--json", action="store_true", help="one JSON object (for scripts)")
    parser.add_argument("--watch", type=float, metavar="SECS", help="refresh every SECS")
    parser.add_argument("--count", type=int, help="with --watch: stop after COUNT refreshes")
    parser.add_argument("--sort", choices=SORT_KEYS, default="rate",
                        help="with --watch: order actors by depth, messages per second or "
                             "handler time per second (default rate)")
    args = parser.parse_args(argv)
    tracker = RateTracker()
    shown = 0
    while True:
        try:
            stats = read_node_stats(args.node_dir)
        except NodeNotRunningError as exc:
            print(f"redshank actors: {exc}", file=sys.stderr)
            return 1
        try:
            if args.json:
                print(json.dumps(stats), flush=True)
            elif args.watch is None:
                print(render(stats), flush=True)
            else:
                tracker.update(stats)
                print("\x1b[2J\x1b[H" + render_rates(tracker, args.sort), flush=True)
        except BrokenPipeError:  # `redshank actors | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        shown += 1
        if args.watch is None or (args.count is not None and shown >= args.count):
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0
