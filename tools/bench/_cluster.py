"""A local N-node cluster the client benchmarks start for themselves: `redshank start --node-id i
--seeds ...` per node on loopback (ports from `cluster_cmd.plan_ports`, one temp dir), each in a
process group of its own in the bench's session (see `_broker.py` on autogroup scheduling),
cores not pinned (the nodes share the machine's CPUs). Also: the nodes' replica views, topics
created through the controller with a replication factor, and pausing/killing one node.

Knows nothing of a node's internals beyond the files it writes for tools
(`cluster/controller.json`, `cluster/replicas-core<N>.json`); always stops every process it
started (SIGTERM, then SIGKILL of the group) and removes the temp dir."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from redshank.tools.bench._broker import not_started, read_line, tree_cpu_seconds
from redshank.tools.bench._progress import phase
from redshank.tools.cluster_cmd import plan_ports

__all__ = ["BenchCluster", "ClusterNode", "wait_for"]

READY_TIMEOUT = 60.0
MAX_SEEDS = 3
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
             every: float = 0.05) -> T:
    """Poll `probe` until it returns something (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(every)


class ClusterNode:
    def __init__(self, node_id: int, data_dir: Path, rpc_port: int, seeds: str,
                 cores: int) -> None:
        self.node_id = node_id
        self.data_dir = data_dir
        self.rpc_port = rpc_port
        self.seeds = seeds
        self.cores = cores
        self.log_path = data_dir.parent / f"node-{node_id}.log"
        self.kafka = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> None:
        cmd = [sys.executable, "-m", "redshank.tools.cli", "start", "--node-id",
               str(self.node_id), "--kafka-addr", f"127.0.0.1:{self.kafka_port()}",
               "--rpc-addr", f"127.0.0.1:{self.rpc_port}", "--seeds", self.seeds,
               "--data-dir", str(self.data_dir), "--cores", str(self.cores), "--no-pin",
               "--admin-addr", "none"]
        with open(self.log_path, "ab") as log:
            # cwd: the node's data dir's parent, never the bench's cwd (see _broker.py).
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                         env=dict(os.environ), process_group=0,
                                         cwd=self.data_dir.parent)

    def kafka_port(self) -> int:
        # The same port on a restart, so clients' metadata stays right.
        return int(self.kafka.rsplit(":", 1)[1]) if self.kafka else 0

    def ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        line = read_line(self.proc.stdout, timeout)
        if not line.startswith("redshank ready "):
            raise not_started(f"node {self.node_id}", line, self.tail())
        self.kafka = line.split("kafka=", 1)[1].split()[0]

    def signal_group(self, sig: signal.Signals) -> None:
        os.killpg(self.pid, sig)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)  # a paused node must hear SIGTERM
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def controller(self) -> dict[str, Any] | None:
        try:
            view: dict[str, Any] = json.loads(
                (self.data_dir / "cluster" / "controller.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return view

    def replicas(self, topic: str) -> dict[int, dict[str, Any]]:
        """Partition -> this node's replica view of `topic` (every core's file)."""
        out: dict[int, dict[str, Any]] = {}
        for core in range(self.cores):
            path = self.data_dir / "cluster" / f"replicas-core{core}.json"
            try:
                view = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            for r in view["replicas"]:
                _, name, part = r["name"].rsplit("/", 2)
                if name == topic:
                    out[int(part)] = r
        return out

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class BenchCluster:
    """`with BenchCluster(3) as c:` ... `c.bootstrap`, `c.nodes`, `c.create_topic(...)`."""

    def __init__(self, n: int, *, cores: int = 1) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"redshank-bench-cluster{n}-"))
        plan = plan_ports(n, cores, 0)
        seeds = ",".join(f"127.0.0.1:{rpc}" for _kafka, rpc in plan[:MAX_SEEDS])
        self.nodes = [ClusterNode(i + 1, self.tmp / f"node-{i + 1}", rpc, seeds, cores)
                      for i, (_kafka, rpc) in enumerate(plan)]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.kafka for n in self.nodes if n.kafka)

    def __enter__(self) -> BenchCluster:
        try:
            phase(f"starting {len(self.nodes)} nodes")
            for node in self.nodes:
                node.spawn()
            for node in self.nodes:
                node.ready()
            phase("waiting for the nodes to agree on one cluster")
            wait_for("the nodes agreeing on one cluster", self._agreed, 60)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _agreed(self) -> bool | None:
        views = [n.controller() for n in self.nodes]
        if any(v is None for v in views):
            return None
        keys = {(v["cluster_uuid"], v["leader"], v["term"]) for v in views if v}
        first = views[0]
        assert first is not None
        ok = (len(keys) == 1 and first["cluster_uuid"] and first["leader"] is not None
              and len(first["members"]) == len(self.nodes))
        return True if ok else None

    def create_topic(self, name: str, partitions: int, rf: int) -> None:
        """CreateTopics through the controller, then wait until every partition has one
        serving leader that every replica agrees on."""
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=20,
                                      request_timeout=30)
        futures[name].result(timeout=40)
        for p in range(partitions):
            wait_for(f"a leader of {name}/{p}", functools.partial(self.leader, name, p), 60)

    def leader(self, topic: str, partition: int) -> ClusterNode | None:
        """The node whose replica of `topic/partition` serves, once the replicas agree."""
        views = [(n, n.replicas(topic).get(partition)) for n in self.nodes if n.proc]
        present = [(n, v) for n, v in views if v is not None]
        serving = [n for n, v in present if v["serves"]]
        if len(serving) != 1 or len({(v["term"], v["leader"]) for _n, v in present}) != 1:
            return None
        return serving[0]

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(n.pid) for n in self.nodes if n.proc is not None)

    def close(self) -> None:
        if any(node.proc is not None for node in self.nodes):
            phase(f"stopping {len(self.nodes)} nodes")
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
