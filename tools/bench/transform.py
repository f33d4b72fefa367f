"""`redshank bench transform`: an identity transform run inside the broker (`redshank transform
deploy`, on the core owning each input partition) next to the same transform as a separate
confluent-kafka consume-transform-produce process (`_transform_worker`), in one run against one
broker this command starts, each on topics of its own.

The in-broker identity (`--identity`, in the JSON as `identity`): `forward` (the default) yields
the input record itself, as Redpanda's identity transform writes the input record
(`w.Write(e.Record())`), so the broker copies its stored bytes without parsing them; `copy`
yields an `Output` of its key, value and headers (each parsed, then encoded again; its
timestamp the time of the output), the cost of a transform that builds what it writes. The
separate process is the same in both: it consumes each record and produces its key, value and
headers (timestamped when it produces them; the latency is measured from the send time each
value carries, not from timestamps).

For each: a backlog of `--records` records is written to the input first, then the transform
starts; throughput is the output's growth (sum of its high watermarks, polled every POLL_S) from
the last poll that saw it empty to the one that saw it full, so neither side's start-up (a group
join, an instance spawn) counts. The CPU per record is over the same window: the broker's
process tree and the separate process, read from /proc at those two polls
(`cpu_us_per_record_with_startup`: from before the transform starts, which counts the in-broker
side's deployment and spawn but not the separate process's own start-up).
Then, with the transform running, `--rate` records/s for `--seconds`, each carrying its send time:
one consumer assigned at the end of both the input and the output gives the latency from produce
to consumable on the output (p50/p99) and, for the same records, on the input alone; their
difference is what the transform adds. The ratios in-broker / separate process: throughput (the
target: at least 2) and p50 (the target: below 1).

`--rounds N` repeats both sides (on new topics), alternating which goes first, and reports the
medians next to every round: on a shared machine the load drifts within a run.

Prints one JSON object as the last line. Bounded: each drain by `--timeout`, each steady phase by
`--seconds` plus a bounded wait. A Kafka client plus the `redshank transform` CLI: knows nothing of
the broker's internals."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from redshank.tools.bench import _transform_worker as worker
from redshank.tools.bench._broker import BenchBroker, create_topic, read_line, tree_cpu_seconds
from redshank.tools.bench._progress import Phases, phase
from redshank.tools.bench._timing import wait_until
from redshank.tools.clikit import EXIT_ERROR, CliError

__all__ = ["main"]

TARGETS = {"in_broker_vs_process_throughput_min": 2.0, "in_broker_vs_process_p50_max": 1.0}
POLL_S = 0.01
TRANSFORM_NAME = "bench-identity"
# Shipped to the broker as the transform's single source file; `--identity` picks the class.
IDENTITY_SOURCE = '''\
"""The identity transforms of `redshank bench transform`: each record, unchanged."""
from redshank.actors.embed.transform import Output, Transform


class Forward(Transform):
    """The input record itself (as Redpanda's identity writes it): copied as it is stored."""
    def process(self, record):
        yield record


class Copy(Transform):
    """A new record of the input's key, value and headers (parsed, encoded again)."""
    def process(self, record):
        yield Output(value=record.value, key=record.key, headers=record.headers)
'''
IDENTITIES = {"forward": "Forward", "copy": "Copy"}


def _options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redshank bench transform")
    parser.add_argument("--records", type=int, default=300_000,
                        help="backlog written to the input before the transform starts (the "
                             "in-broker side drains 300k in under a second: fewer make the "
                             "window a few of the 10 ms polls that time it)")
    parser.add_argument("--partitions", type=int, default=4, help="of each topic")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="records/s of the steady phase (latency)")
    parser.add_argument("--seconds", type=float, default=5.0, help="of the steady phase")
    parser.add_argument("--record-size", type=int, default=1024, help="bytes of each value")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="bound on each backlog drain, seconds")
    parser.add_argument("--cores", type=int, default=2, help="redshank --cores")
    parser.add_argument("--no-pin", action="store_true", help="redshank --no-pin")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat both sides, alternating which goes first; report the "
                             "medians (and every round)")
    parser.add_argument("--only", choices=("process", "broker"), default=None,
                        help="run one side only (no ratio)")
    parser.add_argument("--identity", choices=tuple(IDENTITIES), default="forward",
                        help="the in-broker identity: yield the input record itself "
                             "(forward, as Redpanda's) or an Output copy of it (copy)")
    return parser


def main(argv: list[str]) -> int:
    parser = _options()
    args = parser.parse_args(argv)
    for flag in ("records", "partitions", "cores", "rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1")
    if args.record_size < 16:
        parser.error("--record-size must be at least 16 (a value carries its send time)")
    if args.rate <= 0 or args.seconds <= 0 or args.timeout <= 0:
        parser.error("--rate, --seconds and --timeout must be positive")
    report: dict[str, object] = {
        "bench": "transform", "records": args.records, "partitions": args.partitions,
        "record_bytes": args.record_size, "rate_records_per_s": args.rate,
        "steady_seconds": args.seconds, "client": "confluent-kafka",
        "identity": args.identity,
        "machine_note": ("2-core machine shared with other jobs; broker, transform process and "
                         "client on the same CPUs: compare the ratios, not the absolute figures"),
        "targets": TARGETS,
        "redshank": {"cores": args.cores, "pinned": not args.no_pin, "storage": "disk",
                     "acks_all_fsync": True},
        "process_settings": {"producer": worker.PRODUCER_SETTINGS,
                             "consumer": worker.CONSUMER_SETTINGS, "batch": worker.BATCH,
                             "commit_every_s": worker.COMMIT_EVERY_S,
                             "output_partition": "same number as the input's"},
    }
    kinds = [k for k in ("process", "broker") if args.only in (None, k)]
    rounds: list[dict[str, object]] = []
    with Phases("bench transform"), \
            BenchBroker("redshank", cores=args.cores, pin=not args.no_pin) as broker:
        for r in range(args.rounds):
            # Alternating which goes first: on a shared machine the load drifts within a run.
            order = kinds if r % 2 == 0 else kinds[::-1]
            done = {k: _side(k, broker, args, r) for k in order}
            rounds.append({"order": order, "process": done.get("process"),
                           "in_broker": done.get("broker"),
                           "in_broker_vs_process": _ratios(done.get("broker"),
                                                           done.get("process"))})
    if args.rounds == 1:
        report.update(rounds[0])
    else:
        process, in_broker = _medians(rounds, "process"), _medians(rounds, "in_broker")
        report.update(process=process, in_broker=in_broker,
                      in_broker_vs_process=_ratios(in_broker, process), rounds=rounds)
    print(json.dumps(report))
    return 0


SUMMARY = (("backlog", "records_per_s"), ("backlog", "cpu_us_per_record"),
           ("steady", "p50_ms"), ("steady", "p99_ms"), ("steady", "added_p50_ms"))


def _medians(rounds: list[dict[str, object]], side: str) -> dict[str, object] | None:
    """The median over the rounds of each figure the ratios use, in the shape of one side."""
    runs = [run for r in rounds if isinstance(run := r.get(side), dict)]
    if not runs:
        return None
    out: dict[str, dict[str, object]] = {"backlog": {}, "steady": {}}
    for phase_name, key in SUMMARY:
        values = [float(v) for run in runs if isinstance(block := run.get(phase_name), dict)
                  and isinstance(v := block.get(key), int | float)]
        out[phase_name][key] = round(statistics.median(values), 3) if values else None
    return {"median_of_rounds": len(runs), **out}


def _side(kind: str, broker: BenchBroker, args: argparse.Namespace, round_no: int
          ) -> dict[str, object]:
    source, sink = f"xf-{kind}-r{round_no}-in", f"xf-{kind}-r{round_no}-out"
    phase(f"{kind}: creating {source} and {sink}")
    create_topic(broker.bootstrap, source, args.partitions)
    create_topic(broker.bootstrap, sink, args.partitions)
    phase(f"{kind}: writing a backlog of {args.records} records")
    written = _write_backlog(broker.bootstrap, source, args)
    phase(f"{kind}: draining the backlog")
    starter = (_process_transform if kind == "process"
               else partial(_broker_transform, identity=args.identity))
    # Watching before the transform starts: its first output falls between two polls.
    pids = _tree_pids(broker.pid)  # the separate process's pid is added once it is started
    watch = _Watch(broker.bootstrap, sink, args.partitions, written, pids)
    cpu0 = tree_cpu_seconds(broker.pid)
    try:
        with starter(broker, source, sink, f"{TRANSFORM_NAME}-r{round_no}", pids) as running:
            backlog = watch.wait(args.timeout)
            watch.close()
            cpu_broker = tree_cpu_seconds(broker.pid) - cpu0
            cpu_process = running.cpu_seconds()
            backlog["broker_cpu_s"] = round(cpu_broker, 3)
            if kind == "process":
                backlog["process_cpu_s"] = round(cpu_process, 3)
            # From before the transform starts: the in-broker side's start-up (deployment
            # written and followed, module loaded, instances spawned) counted, the separate
            # process's own start-up not (its broker-side group join is).
            backlog["cpu_us_per_record_with_startup"] = round(
                (cpu_broker + cpu_process) / written * 1e6, 1)
            phase(f"{kind}: steady {args.rate:g} records/s for {args.seconds:g} s")
            steady = _steady(broker.bootstrap, source, sink, args)
    finally:
        watch.close()
    return {"backlog": backlog, "steady": steady, "transform": running.stats}


class _Running:
    """A transform under way: its CPU since it was ready (the separate process's, less what its
    start-up took; 0 for one inside the broker, counted in the broker's) and, once stopped,
    what it reported."""

    def __init__(self, pid: int | None, cpu_at_ready: float = 0.0) -> None:
        self.pid = pid
        self.cpu_at_ready = cpu_at_ready
        self.stats: object = None

    def cpu_seconds(self) -> float:
        if self.pid is None:
            return 0.0
        return tree_cpu_seconds(self.pid) - self.cpu_at_ready


@contextmanager
def _process_transform(broker: BenchBroker, source: str, sink: str, name: str,
                       pids: list[int]) -> Iterator[_Running]:
    cmd = [sys.executable, "-m", "redshank.tools.bench._transform_worker", "--bootstrap",
           broker.bootstrap, "--input", source, "--output", sink, "--group", name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pids.append(proc.pid)  # before it can write any output: the drain's CPU counts it
    try:
        assert proc.stdout is not None
        line = read_line(proc.stdout, 60)
        if not line.startswith("ready "):
            _out, err = proc.communicate(timeout=10) if proc.poll() is not None else (b"", b"")
            last = (err or b"").decode(errors="replace").strip().splitlines()[-1:]
            raise CliError(f"bench: the transform process did not start: {line!r} {last}",
                           EXIT_ERROR)
        running = _Running(proc.pid, float(line.split()[1]))
        yield running
        proc.terminate()
        out, _err = proc.communicate(timeout=40)
        running.stats = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@contextmanager
def _broker_transform(broker: BenchBroker, source: str, sink: str, name: str,
                      pids: list[int], identity: str = "forward") -> Iterator[_Running]:
    del pids  # the broker's, already watched
    with tempfile.TemporaryDirectory(prefix="redshank-bench-transform-") as tmp:
        Path(tmp, "bench_identity.py").write_text(IDENTITY_SOURCE)
        _cli(broker, tmp, "deploy", "--name", name, "--input", source, "--output",
             sink, f"bench_identity:{IDENTITIES[identity]}")
        running = _Running(None)
        try:
            yield running
            try:
                running.stats = json.loads(_cli(broker, tmp, "list", "--json"))
            except CliError as exc:  # the figures stand without the transform's own counts
                running.stats = {"list_error": str(exc)}
        finally:
            _cli(broker, tmp, "delete", "--name", name)


def _cli(broker: BenchBroker, cwd: str, *args: str) -> str:
    cmd = [sys.executable, "-m", "redshank.tools.cli", "transform", *args,
           "--brokers", broker.bootstrap]
    # `module:Class` is found from the current directory, as `python -c "import module"`.
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise CliError(f"bench: redshank transform {args[0]} failed ({proc.returncode}): "
                       f"{(proc.stderr or proc.stdout).strip()[-500:]}", EXIT_ERROR)
    return proc.stdout


def _write_backlog(bootstrap: str, topic: str, args: argparse.Namespace) -> int:
    """`--records` records spread evenly over the partitions, acks=all; how many were acked."""
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 500_000,
                         "queue.buffering.max.kbytes": 1_048_576})
    value = os.urandom(args.record_size)
    acked = 0

    def report(err: KafkaError | None, _msg: Message) -> None:
        nonlocal acked
        acked += err is None

    for i in range(args.records):
        while True:
            try:
                producer.produce(topic, value, partition=i % args.partitions,
                                 on_delivery=report)
                break
            except BufferError:
                producer.poll(0.01)  # local queue full: let acknowledgements drain it
    producer.flush(60)
    return acked


class _Watch:
    """Polls the output's size (the sum of its partitions' high watermarks) every POLL_S on a
    thread, from before the transform starts until it holds `records`."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, records: int,
                 pids: list[int]) -> None:
        from confluent_kafka import Consumer

        self.topic, self.partitions, self.records = topic, partitions, records
        self.pids = pids  # whose CPU the drain counts (read at each poll: may grow)
        self.cpu_empty: float | None = None  # their CPU seconds at the last empty poll
        self.cpu_full: float | None = None  # and at the full one
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-watch"})
        self.start = time.perf_counter()
        self.last_empty: float | None = None  # the last poll that saw no output
        self.full: float | None = None  # the first poll that saw it all
        self.count = 0
        self._stop = threading.Event()
        self._polled_once = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._polled_once.wait(30)  # an empty output seen before the transform may start

    def _run(self) -> None:
        from confluent_kafka import TopicPartition

        while not self._stop.is_set():
            polled = time.perf_counter()
            self.count = sum(hi - lo for lo, hi in (
                self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5,
                                                    cached=False)
                for p in range(self.partitions)))
            if self.count == 0:
                self.last_empty = polled
                self.cpu_empty = _cpu_seconds(self.pids)
            self._polled_once.set()
            if self.count >= self.records:
                self.full = time.perf_counter()
                self.cpu_full = _cpu_seconds(self.pids)
                return
            self._stop.wait(POLL_S)  # polling the output's size: each poll is one request

    def wait(self, timeout: float) -> dict[str, object]:
        """Until the output holds every record (or `timeout`): the rate from the last poll that
        saw it empty to the one that saw it full (a little longer than the drain, on both
        sides alike, so never flattering) and the start-up before."""
        self._thread.join(timeout)
        out: dict[str, object] = {"written": self.records, "output_records": self.count,
                                  "drained": self.full is not None}
        if self.full is not None and self.last_empty is not None:
            out["startup_s"] = round(self.last_empty - self.start, 3)
            out["drain_s"] = round(self.full - self.last_empty, 3)
            out["records_per_s"] = round(self.count / (self.full - self.last_empty))
        if self.cpu_full is not None and self.cpu_empty is not None and self.count:
            # The same window as the rate: neither side's start-up counted.
            out["drain_cpu_s"] = round(self.cpu_full - self.cpu_empty, 3)
            out["cpu_us_per_record"] = round((self.cpu_full - self.cpu_empty) / self.count
                                             * 1e6, 1)
        return out


    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(10)
            self.consumer.close()


def _tree_pids(root: int) -> list[int]:
    """`root` and its descendants now (the broker's cores do not change during a run)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(raw[raw.rindex(")") + 2:].split()[1])
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return out


def _cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds of these processes (all their threads), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in list(pids):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _steady(bootstrap: str, source: str, sink: str, args: argparse.Namespace
            ) -> dict[str, object]:
    """`--rate` records/s for `--seconds`; latency to consumable on the output and the input."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    total = max(1, int(args.rate * args.seconds))
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{sink}-latency",
                       "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                       "fetch.error.backoff.ms": 10})
    ends = [TopicPartition(t, p, reader.get_watermark_offsets(TopicPartition(t, p),
                                                              timeout=10, cached=False)[1])
            for t in (source, sink) for p in range(args.partitions)]
    reader.assign(ends)
    seen: dict[str, list[float]] = {source: [], sink: []}
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set() and len(seen[sink]) < total:
            # poll() returns on the first record; a blocking consume(n, t) would wait out t.
            first = reader.poll(0.05)
            for msg in [first, *reader.consume(1000, 0)] if first is not None else []:
                if msg.error() is None:
                    sent = struct.unpack_from(">q", msg.value() or b"\0" * 8)[0]
                    seen[msg.topic() or ""].append((time.perf_counter_ns() - sent) / 1e6)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    producer.list_topics(source, timeout=10)
    pad = os.urandom(args.record_size - 8)
    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        for i in range(total):
            due = start + i / args.rate
            wait_until(due, producer)
            producer.produce(source, struct.pack(">q", time.perf_counter_ns()) + pad,
                             partition=i % args.partitions)
            producer.poll(0)
        producer.flush(20)
        thread.join(20)
    finally:
        stop.set()
        thread.join(5)
        reader.close()
    out = sorted(seen[sink])
    direct = sorted(seen[source])
    result: dict[str, object] = {"produced": total, "received": len(out)}
    if out:
        result.update(p50_ms=round(statistics.median(out), 3), p99_ms=round(_p99(out), 3),
                      max_ms=round(out[-1], 3))
    if direct:
        result.update(input_p50_ms=round(statistics.median(direct), 3),
                      input_p99_ms=round(_p99(direct), 3))
    if out and direct:
        result["added_p50_ms"] = round(statistics.median(out) - statistics.median(direct), 3)
    return result


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _ratios(in_broker: dict[str, object] | None, process: dict[str, object] | None
            ) -> dict[str, object] | None:
    if in_broker is None or process is None:
        return None

    def get(side: dict[str, object], phase_name: str, key: str) -> float | None:
        block = side.get(phase_name)
        value = block.get(key) if isinstance(block, dict) else None
        return float(value) if isinstance(value, int | float) else None

    out: dict[str, object] = {}
    for name, phase_name, key in (("throughput", "backlog", "records_per_s"),
                                  ("p50", "steady", "p50_ms"), ("p99", "steady", "p99_ms"),
                                  ("added_p50", "steady", "added_p50_ms")):
        a, b = get(in_broker, phase_name, key), get(process, phase_name, key)
        out[name] = round(a / b, 3) if a is not None and b else None
    thr, p50 = out["throughput"], out["p50"]
    out["meets_targets"] = (isinstance(thr, float) and isinstance(p50, float)
                            and thr >= TARGETS["in_broker_vs_process_throughput_min"]
                            and p50 < TARGETS["in_broker_vs_process_p50_max"])
    return out
