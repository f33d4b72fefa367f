"""`redshank top`: a live terminal view of a running node's cores, mailboxes and actors.

    redshank top (--node-dir DIR | --admin-url URL) [--interval SECS] [--sort depth|rate|handler]
                 [--once | --count N] [--rows N]

Reads the same per-core stats `redshank actors` reads: from the node's directory (its
shared-memory stats blocks, `read_node_stats`), or from a node's admin API (`GET /v1/actors`
answers the same JSON). Rates per second come from successive samples (`tools/actor_rates.py`);
each table puts the busiest first, with a sparkline of the last samples, and marks a mailbox that
is filling up (`▲ filling` next to its depth: a ring past `--fill` of its capacity, frames
waiting in overflow, or a depth that rose in each of the last 3 samples; an actor's inbox at
`--depth-warn` messages or rising so). `--once` prints one view (two samples apart)
and exits; `--count N` prints N views; without them the view updates in place until Ctrl-C.
Exit 1 if the node is down or cannot be reached.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from redshank.actors.runtime.node_dir import SHM_DIR
from redshank.actors.runtime.node_stats import NodeNotRunningError, read_node_stats
from redshank.actors.runtime.ring import HEADER_SIZE
from redshank.tools.actor_rates import SORT_KEYS, RateTracker, sparkline

__all__ = ["Source", "main", "render"]

FILLING = "▲ filling"
SPARK_WIDTH = 12


class Source:
    """Where samples come from: a node directory or an admin API base URL."""

    def __init__(self, node_dir: str | None, admin_url: str | None, timeout: float = 5.0
                 ) -> None:
        self.node_dir = node_dir
        self.admin_url = admin_url.rstrip("/") if admin_url else None
        self.timeout = timeout
        self.label = node_dir or self.admin_url or "?"

    def read(self) -> dict[str, Any]:
        """One snapshot; NodeNotRunningError when the node is down or unreachable."""
        if self.node_dir is not None:
            return read_node_stats(self.node_dir)
        assert self.admin_url is not None
        url = f"{self.admin_url}/v1/actors"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                doc: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read(300).decode(errors="replace").strip()
            raise NodeNotRunningError(f"{url} answered {exc.code}: {body}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NodeNotRunningError(f"cannot reach the admin API at {url}: {reason}") from None
        except (ValueError, http.client.InvalidURL) as exc:  # no http://, a port not a number
            raise NodeNotRunningError(f"--admin-url {self.admin_url!r}: {exc} "
                                      "(expected http://HOST:PORT)") from None
        except json.JSONDecodeError as exc:
            raise NodeNotRunningError(f"{url} answered something not JSON: {exc}") from None
        return doc

    def capacity_fn(self, stats: dict[str, Any]) -> Callable[..., int | None]:
        """A ring's capacity: its shared-memory segment's size when the node is local (each
        ring is one segment), else the broker's ring size."""
        prefix = stats.get("prefix")
        local = self.node_dir is not None and isinstance(prefix, str)
        default = 0
        if not local:  # imported only here: the broker's modules take a while to import
            from redshank.actors.broker import RING_BYTES

            default = RING_BYTES

        def capacity(core: int, peer: int, gen: Any, peer_gen: Any) -> int | None:
            if local:
                name = f"{prefix}-r{core}.{peer}.{gen}.{peer_gen}"
                try:
                    return os.stat(SHM_DIR / name).st_size - HEADER_SIZE
                except OSError:
                    return None
            return default

        return capacity


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{suffix}{unit}"
    return f"{value:.1f}{unit}" if value and abs(value) < 100 else f"{value:.0f}{unit}"


def _marker(filling: bool) -> Text:
    return Text(FILLING, style="bold red") if filling else Text("")


def _table(title: str, cols: tuple[str, ...], left: tuple[str, ...]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False,
                  title_style="bold")
    for col in cols:
        width = {"actor": 16, "partition": 12}.get(col, max(len(col), 5))
        if col.endswith("history"):
            width = SPARK_WIDTH
        table.add_column(col, justify="left" if col in left else "right", no_wrap=True,
                         min_width=width if col else None)
    return table


def render(tracker: RateTracker, source_label: str, sort: str, rows: int) -> Group:
    stats = tracker.stats or {}
    head = Text.assemble(
        ("redshank top", "bold"), f"  {source_label}  supervisor pid "
        f"{stats.get('supervisor_pid')}  sort {sort}  sample {tracker.samples}  "
        f"{time.strftime('%H:%M:%S')}")
    cores = _table("cores", ("core", "pid", "gen", "uptime", "pending", "msg/s", "in B/s",
                             "out B/s", "wakeups/s", "msg/s history"), ("msg/s history",))
    for c in tracker.cores():
        if c.error is not None:
            cores.add_row(str(c.core), Text(c.error, style="red"))
            continue
        cores.add_row(str(c.core), str(c.pid), str(c.generation),
                      f"{c.uptime_s or 0:.0f}s", str(c.pending), _num(c.messages_rate),
                      _num(c.in_bytes_rate), _num(c.out_bytes_rate), _num(c.wakeups_rate),
                      sparkline(c.history, SPARK_WIDTH))
    boxes = _table("mailboxes (ring from core to peer)",
                   ("core", "peer", "depth", "fill", "", "overflow", "frames/s", "B/s",
                    "B/s history"), ("B/s history", ""))
    for m in tracker.mailboxes(sort)[:rows]:
        fill = f"{m.fill:.0%}" if m.fill is not None else "-"
        boxes.add_row(str(m.core), str(m.peer) + ("" if m.alive else " (down)"),
                      _num(m.depth, "B"), fill, _marker(m.filling), str(m.overflow),
                      _num(m.frames_rate), _num(m.bytes_rate), sparkline(m.history, SPARK_WIDTH))
    actors = tracker.actors(sort)
    acts = _table(f"actors (busiest first, by {sort})",
                  ("core", "actor", "depth", "", "msg/s", "busy ms/s", "us/msg", "fail",
                   "status", "msg/s history"), ("actor", "status", "msg/s history", ""))
    for a in actors[:rows]:
        acts.add_row(str(a.core), a.name, str(a.depth), _marker(a.filling), _num(a.rate),
                     _num(a.handler_ms_s), _num(a.avg_handler_us), str(a.failures), a.status,
                     sparkline(a.history, SPARK_WIDTH))
    parts: list[Any] = [head, cores, boxes, acts]
    partitions = sorted((a for a in actors if a.name.startswith("partition/")),
                        key=lambda a: (-(a.rate or 0.0), -(a.handler_ms_s or 0.0), a.name))
    if partitions:
        busiest = _table("busiest partitions", ("partition", "core", "msg/s", "busy ms/s",
                                                "depth", "msg/s history"),
                         ("partition", "msg/s history"))
        for a in partitions[: min(rows, 5)]:
            busiest.add_row(a.name.removeprefix("partition/"), str(a.core), _num(a.rate),
                            _num(a.handler_ms_s), str(a.depth),
                            sparkline(a.history, SPARK_WIDTH))
        parts.append(busiest)
    return Group(*parts)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="redshank top", description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--node-dir", help="the node's directory (a node on this machine)")
    where.add_argument("--admin-url", help="a node's admin API, e.g. http://127.0.0.1:9644")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples "
                   "(default 1; cores publish their stats every 0.5 s)")
    p.add_argument("--sort", choices=SORT_KEYS, default="rate",
                   help="order actors by inbox depth, messages per second or handler time "
                        "per second (default rate)")
    p.add_argument("--rows", type=int, default=20, help="rows per table (default 20)")
    p.add_argument("--fill", type=float, default=0.5,
                   help="mark a ring past this fraction of its capacity (default 0.5)")
    p.add_argument("--depth-warn", type=int, default=1000,
                   help="mark an actor inbox at this many messages (default 1000)")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--once", action="store_true",
                      help="print one view (two samples --interval apart) and exit")
    runs.add_argument("--count", type=int, help="print COUNT views, then exit")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.interval <= 0 or args.rows < 1 or (args.count is not None and args.count < 1):
        print("redshank top: --interval must be > 0, --rows and --count >= 1", file=sys.stderr)
        return 2
    source = Source(args.node_dir, args.admin_url)
    tracker = RateTracker(history=SPARK_WIDTH, fill_fraction=args.fill,
                          depth_warn=args.depth_warn)
    console = Console()

    def sample() -> None:
        stats = source.read()
        if tracker.capacity is None:
            tracker.capacity = source.capacity_fn(stats)
        tracker.update(stats)

    def view() -> Group:
        return render(tracker, source.label, args.sort, args.rows)

    try:
        sample()
        if args.once or args.count is not None:
            for _ in range(1 if args.once else args.count):
                time.sleep(args.interval)
                sample()
                console.print(view())
            return 0
        with Live(view(), console=console, auto_refresh=False, transient=False) as live:
            while True:
                time.sleep(args.interval)
                sample()
                live.update(view(), refresh=True)
    except NodeNotRunningError as exc:
        print(f"redshank top: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
