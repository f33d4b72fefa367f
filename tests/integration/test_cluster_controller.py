"""The controller (Raft group 0) across real node processes on 127.0.0.1: three seeds elect a
leader, bootstrap one cluster and register every node (`cluster/controller.json`, the node
identity, `redshank cluster status`); when the leader's whole process group is killed the other
two elect another, and the node restarted on its data dir catches up without a second
bootstrap; a node whose data dir a controller assigned to another cluster is refused
(`cluster_mismatch`); a restarted core 0 restarts the node's controller on its directory; two of
the three restarted after a full stop elect and apply the same cluster again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from redshank.actors.node_rpc import NodeMethod
from redshank.actors.rpc import RpcClient
from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.node_hello import Hello, decode_hello, encode_hello
from redshank.cluster.raft.types import NodeId
from redshank.tools.bench._broker import read_line
from redshank.tools.cluster_cmd import plan_ports

T = TypeVar("T")


class Node:
    """`redshank start` in a process group of its own (so the test can kill all of it)."""

    def __init__(self, data_dir: Path, node_id: int, rpc: int, seeds: list[int],
                 cores: int = 1) -> None:
        self.data_dir = data_dir
        self.cores = cores
        self.node_id = node_id
        self.rpc = rpc
        self.seeds = seeds
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        cmd = [sys.executable, "-m", "redshank.tools.cli", "start", "--node-id",
               str(self.node_id), "--kafka-addr", "127.0.0.1:0", "--data-dir",
               str(self.data_dir), "--cores", str(self.cores), "--no-pin",
               "--admin-addr", "127.0.0.1:0", "--rpc-addr", f"127.0.0.1:{self.rpc}",
               "--seeds", ",".join(f"127.0.0.1:{p}" for p in self.seeds)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                         process_group=0)

    def ready(self, timeout: float = 45.0) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        line = read_line(self.proc.stdout, timeout)
        assert line.startswith("redshank ready "), (line, self.tail())

    def kill_group(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def stop(self) -> int:
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._close()
        return int(proc.returncode)

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def view(self) -> dict[str, Any] | None:
        return _view(self.data_dir)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _view(data_dir: Path) -> dict[str, Any] | None:
    try:
        view: dict[str, Any] = json.loads((data_dir / "cluster" / "controller.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return view


def _hello(port: int) -> Hello:
    caller = Hello(NodeId(99), uuid.uuid4(), None, 1, NetAddress("127.0.0.1", 1),
                   NetAddress("127.0.0.1", 2))

    async def call() -> Hello:
        async with RpcClient("127.0.0.1", port, default_timeout_s=5) as client:
            return decode_hello(await client.call(NodeMethod.HELLO, encode_hello(caller)))
    return asyncio.run(asyncio.wait_for(call(), 10))


def identity_cluster(data_dir: Path) -> str:
    return str(json.loads((data_dir / "cluster" / "node_identity.json").read_text())
               ["cluster_uuid"])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
             detail: Callable[[], str] = lambda: "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        assert time.monotonic() < deadline, f"{what} not within {timeout} s; {detail()}"
        time.sleep(0.05)


def agreed(nodes: list[Node], members: int) -> dict[str, Any] | None:
    """The common view once every node shows the same cluster, leader, term and applied
    count, with `members` members."""
    views = [n.view() for n in nodes]
    if any(v is None for v in views):
        return None
    keys = {(v["cluster_uuid"], v["leader"], v["term"], v["applied"])  # type: ignore[index]
            for v in views}
    first = views[0]
    assert first is not None
    if len(keys) != 1 or not first["cluster_uuid"] or first["leader"] is None \
            or len(first["members"]) != members:
        return None
    return first


def status(data_dir: Path, *flags: str) -> str:
    out = subprocess.run([sys.executable, "-m", "redshank.tools.cli", "cluster", "status",
                          "--node-dir", str(data_dir), *flags],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.timeout(150)
def test_seeds_bootstrap_once_fail_over_and_rejoin(tmp_path: Path) -> None:
    rpcs = [rpc for _kafka, rpc in plan_ports(4, 2, 0)]
    # Node 3 has two cores: the cluster uuid reaches the HELLO of both.
    nodes = [Node(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs[:3], cores=1 + (i == 3))
             for i in (1, 2, 3)]
    # A node that bootstraps a cluster of its own (its only seed is itself), for the end.
    stranger = Node(tmp_path / "stranger", 7, rpcs[3], [rpcs[3]])
    everyone = [*nodes, stranger]
    try:
        for node in everyone:
            node.spawn()
        for node in everyone:
            node.ready()
        detail = lambda: "\n".join(f"{n.node_id}: {n.view()}" for n in nodes)  # noqa: E731
        first = wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30,
                         detail)
        cluster, leader = first["cluster_uuid"], first["leader"]
        assert [m["node_id"] for m in first["members"]] == [1, 2, 3]
        assert first["voters"] == [1, 2, 3]
        for node in nodes:
            assert identity_cluster(node.data_dir) == cluster
        assert f"node 2: cluster {cluster}" in status(nodes[1].data_dir)
        assert json.loads(status(nodes[1].data_dir, "--json"))["cluster_uuid"] == cluster
        for core in (0, 1):
            hello = wait_for("node 3's hello with the cluster", lambda c=core: (
                h if str((h := _hello(rpcs[2] + c)).cluster_uuid) == cluster else None), 10)
            assert hello.node_id == 3
        other_cluster = wait_for("the stranger's own cluster",
                                 lambda: identity_cluster(stranger.data_dir) or None, 30)
        assert other_cluster != cluster
        assert stranger.stop() == 0

        # The leader's whole node (supervisor and cores) dies at once.
        victim = nodes[leader - 1]
        rest = [n for n in nodes if n is not victim]
        killed_at = time.monotonic()
        victim.kill_group()

        def new_leader() -> dict[str, Any] | None:
            view = agreed(rest, 3)
            return view if view is not None and view["leader"] != leader else None

        after = wait_for("a new leader", new_leader, 20, detail)
        failover_s = time.monotonic() - killed_at
        print(f"controller failover: node {after['leader']} leads term {after['term']} "
              f"{failover_s:.2f} s after node {leader} was killed")
        assert after["term"] > first["term"] and after["cluster_uuid"] == cluster

        # Restarted on its data dir (same flags): it catches up, and registers its new Kafka
        # port (port 0 picked another), with no second bootstrap.
        victim.spawn()
        victim.ready()

        def rejoined() -> dict[str, Any] | None:
            view = agreed(nodes, 3)
            return view if view is not None and view["applied"] > after["applied"] else None

        final = wait_for("the restarted node caught up", rejoined, 30, detail)
        assert final["cluster_uuid"] == cluster
        assert identity_cluster(victim.data_dir) == cluster
        logs = "".join(n.log_path.read_text() for n in nodes)
        assert logs.count('"event": "cluster_bootstrapped"') == 1
        assert '"event": "cluster_bootstrap_refused"' not in logs

        # Core 0 of a node dies alone: its supervisor starts it again, and with it the
        # controller, over the same directory.
        core0 = json.loads((nodes[0].data_dir / "node.json").read_text())["pids"][0]
        killed = time.time()
        os.kill(core0, signal.SIGKILL)

        def core0_back() -> dict[str, Any] | None:
            view = agreed(nodes, 3)
            mine = nodes[0].view()
            return view if view is not None and mine is not None \
                and mine["written_at"] > killed else None

        back = wait_for("core 0 of node 1 back in the cluster", core0_back, 30, detail)
        assert back["cluster_uuid"] == cluster and back["applied"] == final["applied"]

        # The stranger's data dir belongs to another cluster: refused by this one's seeds.
        refused = subprocess.run(
            [sys.executable, "-m", "redshank.tools.cli", "start", "--node-id", "7",
             "--kafka-addr", "127.0.0.1:0", "--data-dir", str(stranger.data_dir),
             "--cores", "1", "--no-pin", "--admin-addr", "none",
             "--rpc-addr", f"127.0.0.1:{rpcs[3]}",
             "--seeds", ",".join(f"127.0.0.1:{p}" for p in rpcs[:3])],
            capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1, refused.stderr[-3000:]
        line = refused.stderr.strip().splitlines()[-1]
        assert line.endswith(": cluster_mismatch") and cluster in line \
            and other_cluster in line, line
    finally:
        codes = {n.node_id: n.stop() for n in everyone}
    assert codes == {1: 0, 2: 0, 3: 0, 7: 0}, "\n".join(n.tail() for n in everyone)
    for node in nodes:  # SIGTERM closed the controller before the RPC server
        text = node.log_path.read_text()
        assert text.rfind('"event": "controller_stopped"') < text.rfind('"event": "rpc_stopped"')
        assert '"clean": true' in text

    # Everything stopped; two of the three come back (the third seed unreachable): they elect
    # from their own logs and voters records, and apply the same cluster again.
    again = nodes[:2]
    try:
        for node in again:
            (node.data_dir / "cluster" / "controller.json").unlink(missing_ok=True)
            node.spawn()
        for node in again:
            node.ready()
        restored = wait_for("two nodes restored", lambda: agreed(again, 3), 30, detail)
        assert restored["cluster_uuid"] == cluster and restored["applied"] >= final["applied"]
    finally:
        codes = {n.node_id: n.stop() for n in again}
    assert codes == {1: 0, 2: 0}, "\n".join(n.tail() for n in again)
    logs = "".join(n.log_path.read_text() for n in nodes)
    assert logs.count('"event": "cluster_bootstrapped"') == 1


@pytest.mark.timeout(120)
def test_a_paused_leader_steps_down_when_it_wakes(tmp_path: Path) -> None:
    """SIGSTOP the controller leader's whole node: the other two elect another leader; SIGCONT:
    the old leader hears the newer term, follows it and applies the same log (its view agrees
    with theirs), and nothing it held while paused is applied anywhere twice."""
    rpcs = [rpc for _kafka, rpc in plan_ports(3, 2, 0)]
    nodes = [Node(tmp_path / f"node-{i}", i, rpcs[i - 1], rpcs) for i in (1, 2, 3)]
    paused: Node | None = None
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        detail = lambda: "\n".join(f"{n.node_id}: {n.view()}" for n in nodes)  # noqa: E731
        first = wait_for("three nodes agreeing on one cluster", lambda: agreed(nodes, 3), 30,
                         detail)
        leader = first["leader"]
        paused = nodes[leader - 1]
        rest = [n for n in nodes if n is not paused]
        assert paused.proc is not None
        os.killpg(paused.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()

        def new_leader() -> dict[str, Any] | None:
            view = agreed(rest, 3)
            return view if view is not None and view["leader"] != leader else None

        after = wait_for("a leader while the old one is paused", new_leader, 20, detail)
        print(f"controller failover (SIGSTOP): node {after['leader']} leads term "
              f"{after['term']} {time.monotonic() - stopped_at:.2f} s after node {leader} "
              f"was paused")
        assert after["term"] > first["term"] and after["cluster_uuid"] == first["cluster_uuid"]
        woke_at = time.time()
        os.killpg(paused.proc.pid, signal.SIGCONT)

        def rejoined() -> dict[str, Any] | None:
            view = agreed(nodes, 3)
            mine = paused.view() if paused is not None else None
            return view if view is not None and mine is not None \
                and mine["written_at"] > woke_at and view["leader"] != leader else None

        final = wait_for("the woken node following the new leader", rejoined, 30, detail)
        assert final["term"] >= after["term"] and final["applied"] >= after["applied"]
        assert final["cluster_uuid"] == first["cluster_uuid"]
        logs = "".join(n.log_path.read_text() for n in nodes)
        assert logs.count('"event": "cluster_bootstrapped"') == 1
    finally:
        if paused is not None and paused.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(paused.proc.pid, signal.SIGCONT)  # never leave a stopped group
        codes = {n.node_id: n.stop() for n in nodes}
    assert codes == {1: 0, 2: 0, 3: 0}, "\n".join(n.tail() for n in nodes)
