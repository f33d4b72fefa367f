"""`redshank bench catchup`: how fast a follower that missed `--bytes` (default 1 GB) catches up.

A local 3-node cluster (`_cluster.py`), a 1-partition topic of replication factor 3; one
follower node (not the partition's leader, not the controller's leader) is paused with SIGSTOP
(`--mode stop`, default) or killed with SIGKILL (`--mode kill`); confluent-kafka produces 1 KiB
records (acks `--acks`, default all: a majority of the two left) until `--bytes` of values were
acknowledged; then the follower resumes (SIGCONT) or is restarted on its data dir, and the bench
polls the replica views nodes write (`cluster/replicas-core<N>.json`, every 0.25 s) until the
follower's log end equals the leader's.

Prints one JSON object as the last line: bytes missed (record values: the log holds ~60 bytes
more per record), seconds from resume (and, with `--mode kill`, after the restart's ready line)
to caught up, MB/s of record values, and the nodes' CPU seconds over the catch-up.
`--profile DIR` runs `py-spy record` on the leader's and the follower's core processes during
the catch-up (py-spy must be installed). A Kafka client plus the nodes' view files: knows
nothing else of them."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

from redshank.tools.bench._cluster import BenchCluster, ClusterNode, wait_for
from redshank.tools.bench._progress import Phases, phase
from redshank.tools.bench.produce import VALUE
from redshank.tools.clikit import EXIT_USAGE, CliError

__all__ = ["main"]

TOPIC = "bench-catchup"
TARGETS = {"catchup_mb_per_s": 100.0}
CATCHUP_TIMEOUT_S = 900.0


def _core_pids(node: ClusterNode) -> list[int]:
    try:
        meta = json.loads((node.data_dir / "node.json").read_text())
    except (OSError, json.JSONDecodeError):
        return [node.pid]
    return [int(p) for p in meta.get("pids", [])] or [node.pid]


def _committed_end(live: list[ClusterNode]) -> tuple[ClusterNode, int] | None:
    """The serving leader among `live` nodes, once they agree on it, and its log end once its
    high watermark covers it."""
    views = [(n, n.replicas(TOPIC).get(0)) for n in live]
    if any(v is None for _n, v in views):
        return None
    if len({(v["term"], v["leader"]) for _n, v in views if v is not None}) != 1:
        return None
    for n, v in views:
        if v is not None and v["serves"] and v["high_watermark"] >= v["log_end"]:
            return n, int(v["log_end"])
    return None


def _fill(bootstrap: str, total: int, acks: str, seconds: float) -> dict[str, object]:
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 500_000,
                         "queue.buffering.max.kbytes": 1_048_576, "enable.idempotence": False})
    delivered = failed = sent = 0

    def report(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered, failed
        if err is None:
            delivered += 1
        else:
            failed += 1

    count = -(-total // len(VALUE))
    start = time.perf_counter()
    deadline = start + seconds
    while sent < count and time.perf_counter() < deadline:
        try:
            producer.produce(TOPIC, VALUE, partition=0, on_delivery=report)
            sent += 1
        except BufferError:
            producer.poll(0.01)
            continue
        if sent % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - start
    if failed or left:
        raise RuntimeError(f"producing failed: {failed} failed, {left} undelivered")
    return {"records": delivered, "value_bytes": delivered * len(VALUE),
            "produce_seconds": round(elapsed, 3),
            "produce_mb_per_s": round(delivered * len(VALUE) / elapsed / 1e6, 1)}


def _profile(out_dir: Path, label: str, pids: list[int], seconds: int
             ) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy")
    if spy is None:
        raise CliError("--profile needs py-spy on PATH (pip install py-spy)", EXIT_USAGE)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([spy, "record", "-r", "100", "--nonblocking", "--format", "raw",
                              "-d", str(seconds), "-p", str(pid), "-o",
                              str(out_dir / f"{label}-{pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in pids]


def run(args: argparse.Namespace) -> dict[str, object]:
    with BenchCluster(3, cores=args.node_cores) as cluster:
        cluster.create_topic(TOPIC, 1, 3)
        leader = wait_for("a leader", lambda: cluster.leader(TOPIC, 0), 60)
        ctl = cluster.nodes[0].controller() or {}
        follower = next(n for n in cluster.nodes
                        if n is not leader and n.node_id != ctl.get("leader"))
        others = ",".join(n.kafka for n in cluster.nodes if n is not follower)
        if args.mode == "stop":
            follower.signal_group(signal.SIGSTOP)
        else:
            follower.kill()
        try:
            phase(f"producing {args.bytes / 1e6:.0f} MB while node {follower.node_id} is "
                  f"{'paused' if args.mode == 'stop' else 'down'}")
            filled = _fill(others, args.bytes, args.acks, args.seconds)
            live = [n for n in cluster.nodes if n is not follower]
            now_leader, target = wait_for("the leader's log end, all committed",
                                          lambda: _committed_end(live), 60)
            behind = (follower.replicas(TOPIC).get(0) or {}).get("log_end", 0)
        except BaseException:
            if args.mode == "stop" and follower.proc is not None:
                follower.signal_group(signal.SIGCONT)
            raise
        cpu0 = cluster.cpu_seconds()
        spies: list[subprocess.Popen[bytes]] = []
        start = time.perf_counter()
        ready_s = None
        phase(f"node {follower.node_id} catching up")
        if args.mode == "stop":
            follower.signal_group(signal.SIGCONT)
        else:
            # The views of the old process would answer too early.
            for core in range(follower.cores):
                with contextlib.suppress(FileNotFoundError):
                    (follower.data_dir / "cluster" / f"replicas-core{core}.json").unlink()
            follower.spawn()
            follower.ready()
            ready_s = time.perf_counter() - start
        if args.profile:
            spies = (_profile(Path(args.profile), "leader", _core_pids(now_leader),
                              args.profile_seconds)
                     + _profile(Path(args.profile), "follower", _core_pids(follower),
                                args.profile_seconds))
        try:
            wait_for("the follower caught up", lambda: (
                True if (v := follower.replicas(TOPIC).get(0)) is not None
                and v["log_end"] >= target else None), CATCHUP_TIMEOUT_S, every=0.02)
            took = time.perf_counter() - start
        finally:
            for spy in spies:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(args.profile_seconds + 30)
        cpu = cluster.cpu_seconds() - cpu0
    value_bytes = filled["value_bytes"]
    assert isinstance(value_bytes, int)
    result: dict[str, object] = {
        "mode": args.mode, "acks": args.acks, **filled,
        "leader_moved_while_producing": now_leader is not leader,
        "log_end_offset": target,
        "follower_log_end_before": behind,
        "catchup_seconds": round(took, 3),
        "catchup_mb_per_s": round(value_bytes / took / 1e6, 1),
        "nodes_cpu_s": round(cpu, 3),
    }
    if ready_s is not None:
        result["restart_ready_seconds"] = round(ready_s, 3)
        result["catchup_after_ready_mb_per_s"] = round(
            value_bytes / (took - ready_s) / 1e6, 1)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank bench catchup")
    parser.add_argument("--bytes", type=float, default=1e9,
                        help="record value bytes the follower misses (default 1e9)")
    parser.add_argument("--acks", choices=("1", "all"), default="all")
    parser.add_argument("--mode", choices=("stop", "kill"), default="stop",
                        help="SIGSTOP/SIGCONT the follower, or SIGKILL and restart it")
    parser.add_argument("--node-cores", type=int, default=1, help="cores per node")
    parser.add_argument("--seconds", type=float, default=600.0, help="bound on producing")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy record the leader's and follower's cores into DIR")
    parser.add_argument("--profile-seconds", type=int, default=20)
    args = parser.parse_args(argv)
    if args.bytes < len(VALUE):
        parser.error(f"--bytes must be at least {len(VALUE)}")
    if args.node_cores < 1 or args.seconds <= 0:
        parser.error("--node-cores must be at least 1 and --seconds positive")
    args.bytes = int(args.bytes)
    report = {
        "bench": "catchup", "record_bytes": len(VALUE), "client": "confluent-kafka",
        "machine_note": ("2-core machine shared with other jobs; the three nodes and the "
                         "client share the CPUs: figures are noisy"),
        "targets": TARGETS, "cluster": {"nodes": 3, "replication_factor": 3,
                                        "cores_per_node": args.node_cores},
    }
    with Phases("bench catchup"):
        report.update(run(args))
    report["vs_target"] = round(float(report["catchup_mb_per_s"])  # type: ignore[arg-type]
                                / TARGETS["catchup_mb_per_s"], 3)
    print(json.dumps(report))
    return 0
