"""Nodes that know of each other, as processes on loopback: `redshank start --rpc-addr` answers
HELLO on every core (again after a core restart), nodes started with seeds see each other
(`cluster/peers.json`), a second node with a running node's id or of another cluster stops with
the reason on stderr, a data dir refuses another node id, and `redshank cluster start -n 3`
runs three brokers that each serve Kafka, form one cluster (group 0: one uuid, one leader,
three members) and all stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from broker_proc import BrokerProcess
from confluent_kafka import Producer
from test_confluent_kafka import consume_assigned

from redshank.actors.node_identity_store import store_identity
from redshank.actors.node_rpc import NodeMethod
from redshank.actors.rpc import RpcClient
from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.node_hello import Hello, decode_hello, encode_hello
from redshank.cluster.node_identity import NodeIdentity
from redshank.cluster.raft.types import NodeId
from redshank.tools.cluster_cmd import plan_ports

CALLER = Hello(NodeId(99), uuid.uuid4(), None, 1, NetAddress("127.0.0.1", 1),
               NetAddress("127.0.0.1", 2))


def _rpc_base(cores: int) -> int:
    return plan_ports(1, cores, 0)[0][1]


def _hello(port: int) -> Hello:
    async def call() -> Hello:
        async with RpcClient("127.0.0.1", port, default_timeout_s=5) as client:
            return decode_hello(await client.call(NodeMethod.HELLO, encode_hello(CALLER)))
    return asyncio.run(asyncio.wait_for(call(), 10))


def _node(data_dir: Path, node_id: int, rpc: int, seeds: list[int], cores: int = 1
          ) -> BrokerProcess:
    args = ["--node-id", str(node_id), "--rpc-addr", f"127.0.0.1:{rpc}", "--no-pin"]
    if seeds:
        args += ["--seeds", ",".join(f"127.0.0.1:{p}" for p in seeds)]
    return BrokerProcess(data_dir, cores=cores, extra_args=tuple(args))


def _peers(data_dir: Path, want: set[int], timeout: float = 20.0) -> dict[int, dict[str, Any]]:
    """The peers core 0 lists in cluster/peers.json, once they include `want`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            view = json.loads((data_dir / "cluster" / "peers.json").read_text())
            peers = {p["node_id"]: p for p in view["peers"]}
        except (FileNotFoundError, json.JSONDecodeError):
            peers = {}
        if want <= peers.keys() or time.monotonic() > deadline:
            assert want <= peers.keys(), f"{data_dir}: peers {sorted(peers)}, want {want}"
            return peers
        time.sleep(0.1)


def _start_and_wait(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redshank.tools.cli", "start",
                           "--admin-addr", "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=timeout)


def _start_all(*argvs: list[str], timeout: float = 60.0
               ) -> list[subprocess.CompletedProcess[str]]:
    """Run several `redshank start` at once, each until it exits (killed past `timeout`)."""
    procs = [subprocess.Popen([sys.executable, "-m", "redshank.tools.cli", "start",
                               "--admin-addr", "127.0.0.1:0", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv in argvs]
    done = []
    deadline = time.monotonic() + timeout
    for proc, argv in zip(procs, argvs, strict=True):
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return done


def _node_info(data_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((data_dir / "node.json").read_text())
    return info


@pytest.mark.timeout(90)
def test_every_core_answers_hello_also_after_a_restart(tmp_path: Path) -> None:
    rpc = _rpc_base(2)
    node = _node(tmp_path / "n", 4, rpc, [], cores=2)
    node.start()
    try:
        assert f" rpc=127.0.0.1:{rpc} " in node.ready_line
        identity = json.loads((tmp_path / "n" / "cluster" / "node_identity.json").read_text())
        for core in (0, 1):
            answer = _hello(rpc + core)
            assert answer.node_id == 4 and answer.cores == 2
            assert str(answer.incarnation) == identity["node_uuid"]
            assert answer.cluster_uuid is None and identity["cluster_uuid"] == ""
            assert str(answer.kafka_addr) == node.bootstrap
            assert answer.rpc_addr == NetAddress("127.0.0.1", rpc)
        # Core 0 keeps the caller as a peer; the restarted core 1 binds its port again.
        assert _peers(tmp_path / "n", {99})[99]["rpc"] == "127.0.0.1:2"
        before = _node_info(tmp_path / "n")
        os.kill(before["pids"][1], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _node_info(tmp_path / "n")["generations"][1] == before["generations"][1]:
            assert time.monotonic() < deadline, "core 1 not restarted"
            time.sleep(0.1)
        while True:
            try:
                assert _hello(rpc + 1).node_id == 4
                break
            except (OSError, AssertionError):
                assert time.monotonic() < deadline, "restarted core 1 does not answer HELLO"
                time.sleep(0.2)
    finally:
        assert node.stop() == 0, node.log_tail()
    for core in (0, 1):  # SIGTERM closed the listeners
        with pytest.raises(OSError):
            _hello(rpc + core)


@pytest.mark.timeout(120)
def test_seeds_see_each_other_and_refuse_a_duplicate_id_or_another_cluster(
        tmp_path: Path) -> None:
    rpc_a, rpc_b, rpc_dup, rpc_other = (_rpc_base(1) for _ in range(4))
    cluster = uuid.uuid4()
    # Node 1 already belongs to a cluster (as a controller will have written it).
    store_identity(str(tmp_path / "a"), NodeIdentity(NodeId(1), uuid.uuid4(), (), cluster))
    a = _node(tmp_path / "a", 1, rpc_a, [rpc_a])  # its own address among its seeds
    b = _node(tmp_path / "b", 2, rpc_b, [rpc_a, rpc_b])
    a.start()
    try:
        b.start()
        try:
            seen_by_b = _peers(tmp_path / "b", {1})
            assert seen_by_b[1]["kafka"] == a.bootstrap
            assert seen_by_b[1]["cluster_uuid"] == str(cluster)
            assert set(_peers(tmp_path / "a", {2})) == {2}  # not itself
            assert '"event": "peer_seen"' in b.log_tail(200)

            store_identity(str(tmp_path / "other"),
                           NodeIdentity(NodeId(5), uuid.uuid4(), (), uuid.uuid4()))
            # Both at once: each greets, is refused, and stops on its own.
            dup, other = _start_all(
                ["--node-id", "1", "--kafka-addr", "127.0.0.1:0",
                 "--data-dir", str(tmp_path / "dup"), "--cores", "1",
                 "--rpc-addr", f"127.0.0.1:{rpc_dup}", "--no-pin",
                 "--seeds", f"127.0.0.1:{rpc_b},127.0.0.1:{rpc_a}"],
                ["--node-id", "5", "--kafka-addr", "127.0.0.1:0",
                 "--data-dir", str(tmp_path / "other"), "--cores", "1",
                 "--rpc-addr", f"127.0.0.1:{rpc_other}", "--no-pin",
                 "--seeds", f"127.0.0.1:{rpc_a}"])
            assert dup.returncode == 1, dup.stderr[-3000:]
            assert "duplicate_node_id" in dup.stderr
            line = dup.stderr.strip().splitlines()[-1]
            assert line.startswith("redshank start: ") and "node id 1 is already used by the " \
                f"node at 127.0.0.1:{rpc_a}" in line, line
            assert other.returncode == 1, other.stderr[-3000:]
            assert other.stderr.strip().splitlines()[-1].endswith(": cluster_mismatch")
            # The node that was there first serves on, and stays node 1 in b's view.
            assert _peers(tmp_path / "b", {1})[1]["node_uuid"] == seen_by_b[1]["node_uuid"]
            assert a.proc is not None and a.proc.poll() is None
            assert _hello(rpc_a).node_id == 1
        finally:
            assert b.stop() == 0, b.log_tail()
    finally:
        assert a.stop() == 0, a.log_tail()

    reused = _start_and_wait(["--node-id", "7", "--kafka-addr", "127.0.0.1:0",
                              "--data-dir", str(tmp_path / "a"), "--cores", "1"])
    assert reused.returncode == 2
    assert reused.stderr.strip().splitlines()[-1] == (
        f"redshank start: data dir {tmp_path / 'a'} belongs to node 1, started as node 7")


@pytest.mark.timeout(120)
def test_cluster_start_three_nodes_serve_and_stop_on_sigterm(tmp_path: Path) -> None:
    log = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([sys.executable, "-m", "redshank.tools.cli", "cluster", "start",
                             "-n", "3", "--cores", "1", "--base-port", "0",
                             "--data-dir", str(tmp_path / "c")],
                            stdout=subprocess.PIPE, stderr=log, text=True, process_group=0)
    log.close()
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while not lines or not lines[-1].startswith("bootstrap="):
            assert time.monotonic() < deadline and proc.poll() is None, (
                lines, (tmp_path / "cluster.log").read_text()[-3000:])
            lines.append(proc.stdout.readline().strip())
        assert [ln.split()[:2] for ln in lines[:3]] == [["node", "1"], ["node", "2"],
                                                        ["node", "3"]]
        bootstrap = lines[-1].removeprefix("bootstrap=").split(",")
        assert bootstrap == [ln.split()[2].removeprefix("kafka=") for ln in lines[:3]]
        for i in (1, 2, 3):
            info = _node_info(tmp_path / "c" / f"node-{i}")
            pids += [info["supervisor_pid"], *info["pids"]]
        for i, server in enumerate(bootstrap, 1):
            topic = f"node-{i}-only"
            producer = Producer({"bootstrap.servers": server, "acks": "all"})
            for n in range(5):
                producer.produce(topic, key=f"k{n}".encode(), value=f"node {i}".encode(),
                                 partition=0)
            assert producer.flush(20) == 0
            got = consume_assigned(server, topic, 1, 5)
            assert [(o, v) for o, _k, v in got[0]] == [(n, f"node {i}".encode())
                                                       for n in range(5)]
        for i in (1, 2, 3):  # each sees the other two (HELLO to the seeds)
            assert set(_peers(tmp_path / "c" / f"node-{i}", {1, 2, 3} - {i})) == \
                {1, 2, 3} - {i}
        # The three seeds run group 0: one cluster, one leader, three members, everywhere.
        views = _controller_views([tmp_path / "c" / f"node-{i}" for i in (1, 2, 3)])
        assert [m["node_id"] for m in views[0]["members"]] == [1, 2, 3]
        for i in (1, 2, 3):
            identity = json.loads((tmp_path / "c" / f"node-{i}" / "cluster" /
                                   "node_identity.json").read_text())
            assert identity["cluster_uuid"] == views[0]["cluster_uuid"]
        _check_admin_api([ln.split()[3].removeprefix("admin=") for ln in lines[:3]],
                         views[0]["leader"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0, (tmp_path / "cluster.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    deadline = time.monotonic() + 10
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive, f"processes left: {alive}"


@pytest.mark.timeout(90)
def test_cluster_start_stops_the_others_when_a_node_dies(tmp_path: Path) -> None:
    log = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([sys.executable, "-m", "redshank.tools.cli", "cluster", "start",
                             "-n", "2", "--cores", "1", "--base-port", "0",
                             "--data-dir", str(tmp_path / "c")],
                            stdout=subprocess.PIPE, stderr=log, text=True, process_group=0)
    log.close()
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while not line.startswith("bootstrap="):
            assert time.monotonic() < deadline and proc.poll() is None
            line = proc.stdout.readline().strip()
        first = _node_info(tmp_path / "c" / "node-1")
        os.kill(_node_info(tmp_path / "c" / "node-2")["supervisor_pid"], signal.SIGKILL)
        assert proc.wait(40) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    err = (tmp_path / "cluster.log").read_text()
    assert "redshank cluster start: node 2 exited unexpectedly (exit code -9)" in err, err[-2000:]
    pids = [first["supervisor_pid"], *first["pids"]]
    deadline = time.monotonic() + 10
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive, f"node 1 processes left: {alive}"


def _controller_views(dirs: list[Path], timeout: float = 30.0) -> list[dict[str, Any]]:
    """Each node's `cluster/controller.json`, once all name the same cluster and leader and
    list every node as a member."""
    deadline = time.monotonic() + timeout
    while True:
        views = []
        for d in dirs:
            try:
                views.append(json.loads((d / "cluster" / "controller.json").read_text()))
            except (FileNotFoundError, json.JSONDecodeError):
                break
        if len(views) == len(dirs) and views[0]["cluster_uuid"] \
                and views[0]["leader"] is not None and len(views[0]["members"]) == len(dirs) \
                and all((v["cluster_uuid"], v["leader"], len(v["members"]))
                        == (views[0]["cluster_uuid"], views[0]["leader"], len(dirs))
                        for v in views):
            return views
        assert time.monotonic() < deadline, f"no agreement on the controller: {views}"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped by its exited parent yet) is gone as far as we care.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _check_admin_api(admins: list[str], leader: int) -> None:
    """Each node's admin API (tools/admin) knows the cluster; the leading replica of a
    partition reports its records (the partitions table is republished every second)."""
    for admin in admins:
        with urllib.request.urlopen(f"http://{admin}/v1/cluster/health", timeout=10) as resp:
            health = json.loads(resp.read())
        assert health["mode"] == "cluster" and health["all_nodes"] == [1, 2, 3], health
        assert health["controller_id"] == leader and health["is_healthy"] is True, health
    deadline = time.monotonic() + 15
    while True:
        rows = []
        for admin in admins:
            with urllib.request.urlopen(f"http://{admin}/v1/partitions", timeout=10) as resp:
                rows += [r for r in json.loads(resp.read())["partitions"]
                         if r["topic"] == "node-1-only" and r["role"] == "leader"]
        if (rows and rows[0]["high_watermark"] == 5) or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # until the next publish of the table
    assert len(rows) == 1 and rows[0]["high_watermark"] == 5, rows
    assert rows[0]["leader"] in rows[0]["replicas"] and set(rows[0]["replicas"]) <= {1, 2, 3}
