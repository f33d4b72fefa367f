"""The controller (Raft group 0) of three real nodes, each in a network namespace of its own
(tests/integration/lab/netns.py: a private subnet behind an `unreachable` route, links cut with
tc): the leader cut off both ways loses the lead (the other two elect another, the cut-off one
steps down on its own: CheckQuorum), and cut off one way only (it hears them, they do not hear
it) the other two elect another too and the old leader follows the newer term it hears; after
each heal all three agree on one leader, term and applied log. The processes are stopped before
the lab is torn down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.netns import NetnsLab, require_netns
from test_cluster_controller import _view, wait_for

from redshank.tools.bench._broker import read_line

RPC_PORT = 7000


def _agreed(dirs: list[Path]) -> dict[str, Any] | None:
    views = [_view(d) for d in dirs]
    if any(v is None for v in views):
        return None
    keys = {(v["cluster_uuid"], v["leader"], v["term"], v["applied"])  # type: ignore[index]
            for v in views}
    first = views[0]
    assert first is not None
    if len(keys) != 1 or not first["cluster_uuid"] or first["leader"] is None:
        return None
    return first


def test_the_controller_leader_cut_off_loses_the_lead_and_rejoins(tmp_path: Path) -> None:
    require_netns()
    with NetnsLab(3) as lab:
        seeds = ",".join(f"{lab.addr(n)}:{RPC_PORT}" for n in (1, 2, 3))
        dirs = {n: tmp_path / f"node-{n}" for n in (1, 2, 3)}
        procs: dict[int, subprocess.Popen[bytes]] = {}
        logs = {n: tmp_path / f"node-{n}.log" for n in (1, 2, 3)}
        try:
            for n in (1, 2, 3):
                with open(logs[n], "wb") as log:
                    procs[n] = lab.run(n, [
                        sys.executable, "-m", "redshank.tools.cli", "start", "--node-id", str(n),
                        "--kafka-addr", f"{lab.addr(n)}:9092", "--data-dir", str(dirs[n]),
                        "--cores", "1", "--no-pin", "--admin-addr", "none",
                        "--rpc-addr", f"{lab.addr(n)}:{RPC_PORT}",
                        "--seeds", seeds], stdout=subprocess.PIPE, stderr=log, env=os.environ)
            for n, proc in procs.items():
                assert proc.stdout is not None
                line = read_line(proc.stdout, 45)
                assert line.startswith("redshank ready "), (line, logs[n].read_text()[-2000:])
            everyone = [dirs[n] for n in (1, 2, 3)]
            detail: Callable[[], str] = lambda: "\n".join(  # noqa: E731
                f"{n}: {_view(d)}" for n, d in dirs.items())
            first = wait_for("three nodes agreeing", lambda: _agreed(everyone), 45, detail)
            cluster = first["cluster_uuid"]

            for how in ("both ways", "one way"):
                leader = int(_agreed(everyone)["leader"])  # type: ignore[index]
                others = [n for n in (1, 2, 3) if n != leader]
                cut_at = time.monotonic()
                if how == "both ways":
                    lab.isolate(leader)
                else:  # the leader hears the others; nothing it sends reaches them
                    for n in others:
                        lab.cut_one_way(leader, n)

                def new_leader(leader: int = leader, others: list[int] = others
                               ) -> dict[str, Any] | None:
                    view = _agreed([dirs[n] for n in others])
                    return view if view is not None and view["leader"] != leader else None

                after = wait_for(f"a new leader with the old one cut off {how}", new_leader,
                                 30, detail)
                print(f"cut {how}: node {after['leader']} leads term {after['term']} "
                      f"{time.monotonic() - cut_at:.2f} s after node {leader} was cut off")
                if how == "both ways":
                    # Alone, the old leader steps down (CheckQuorum): its view stops naming
                    # itself, though it cannot know who leads now.
                    wait_for("the cut-off leader stepping down",
                             lambda leader=leader: ((v := _view(dirs[leader])) is not None
                             and v["leader"] != leader) or None, 30, detail)
                assert lab.dropped(leader) > 0
                lab.heal()

                def rejoined(after: dict[str, Any] = after, leader: int = leader
                             ) -> dict[str, Any] | None:
                    view = _agreed(everyone)
                    return view if view is not None and view["leader"] != leader \
                        and view["term"] >= after["term"] else None

                final = wait_for(f"all three agreeing after the {how} cut healed", rejoined, 30,
                                 detail)
                assert final["cluster_uuid"] == cluster
        finally:
            for proc in procs.values():  # the nodes stop before the lab goes
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            codes = {}
            for n, proc in procs.items():
                try:
                    codes[n] = proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    codes[n] = proc.wait(10)
                if proc.stdout is not None:
                    proc.stdout.close()
    assert codes == {1: 0, 2: 0, 3: 0}, "\n".join(p.read_text()[-1500:] for p in logs.values())
    text = "".join(p.read_text() for p in logs.values())
    assert text.count('"event": "cluster_bootstrapped"') == 1
