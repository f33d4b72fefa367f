"""`redshank bench produce`: confluent-kafka producing 1 KiB records with acks=all to 1 and 8
partitions of a broker this command starts (redshank fsyncs before acking), next to the Tansu
broker (memory storage, no fsync) when it is found (`--tansu PATH`, $REDSHANK_TANSU or PATH).

Prints one JSON object as the last line: msg/s, MB/s and the broker's CPU microseconds per
produced message (its whole process tree, from /proc). Each run is bounded by `--messages` and
`--seconds`. `--compression gzip|snappy|lz4|zstd` makes the producer compress its batches
(`compression.type`), with values of 1 KiB hex text (about 2:1) instead of random bytes, so the
broker decompresses real work. Knows nothing of the broker's internals: it is a Kafka client.

`--admin-overhead`: the cost of the admin API (issue 15) instead: rounds of the same produce run
on a broker with `--admin-addr none` and on one serving it while this command scrapes `/metrics`
every `--scrape-every` seconds, interleaved (off, on, on, off, ...) in one run; reports each
run's msg/s, the medians and their ratio (target: on >= 0.97 x off).

`--transactional`: the cost of transactions (KIP-98, issue 18) instead: on one broker, per
partition count, an idempotent acks=all run (the non-transactional figure), then a transactional
producer committing every `--txn-sizes` records (default 100 and 1,000), each run bounded by
`--messages` and `--seconds`; reports committed msg/s, transactions/s, the broker's CPU per
record and each size's ratio to the idempotent figure from the same run."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import urllib.request

from redshank.tools.bench._broker import BenchBroker, create_topic, run_bench, tree_cpu_seconds
from redshank.tools.bench._progress import Phases, phase, step

__all__ = ["main", "produce"]

VALUE = os.urandom(1024)
# For compressed runs: 1 KiB of hex digits, which every codec shrinks to about half.
TEXT_VALUE = os.urandom(512).hex().encode()
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
TARGETS = {"produce_msg_per_s_acks_all": 100_000}
# `--nodes N`: RF=min(3, N) acks=all on a local cluster, against one broker in the same run.
CLUSTER_TARGETS = {"cluster_vs_single_msg_per_s_min": 0.35}


def produce(topic: str, bootstrap: str, messages: int, seconds: float, acks: str = "all",
            compression: str = "none") -> dict[str, object]:
    """Produce up to `messages` 1 KiB records (at most `seconds` of producing, plus a bounded
    flush); delivered and failed counts and the rate over the whole run."""
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 500_000,
                         "queue.buffering.max.kbytes": 1_048_576, "enable.idempotence": False,
                         "compression.type": compression})
    value = VALUE if compression == "none" else TEXT_VALUE
    delivered = 0
    failed = 0
    errors: dict[str, int] = {}

    def report(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered, failed
        if err is None:
            delivered += 1
        else:
            failed += 1
            errors[err.name()] = errors.get(err.name(), 0) + 1

    start = time.perf_counter()
    deadline = start + seconds
    sent = 0
    while sent < messages and time.perf_counter() < deadline:
        try:
            producer.produce(topic, value, on_delivery=report)
            sent += 1
        except BufferError:
            producer.poll(0.01)  # queue full: let deliveries drain it
            continue
        if sent % 1000 == 0:
            producer.poll(0)
    left = producer.flush(30)
    elapsed = time.perf_counter() - start
    return {"sent": sent, "produced": delivered, "failed": failed, "undelivered": left,
            "seconds": round(elapsed, 3), "msg_per_s": round(delivered / elapsed),
            "mb_per_s": round(delivered * len(value) / elapsed / 1e6, 1),
            "compression": compression, **({"errors": errors} if errors else {})}


def _measure(topic: str, bootstrap: str, partitions: int, args: argparse.Namespace
             ) -> dict[str, object]:
    result = produce(topic, bootstrap, args.messages, args.seconds,
                     compression=args.compression)
    rate = result["msg_per_s"]
    assert isinstance(rate, int)
    result["vs_target"] = round(rate / TARGETS["produce_msg_per_s_acks_all"], 3)
    return result


def main(argv: list[str]) -> int:
    if "--admin-overhead" in argv:
        return _admin_overhead(argv)
    if "--transactional" in argv:
        return _transactional(argv)
    return run_bench("produce", argv, _measure, TARGETS, {"messages": 200_000, "seconds": 20.0},
                     _options,
                     cluster_targets=CLUSTER_TARGETS)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compression", choices=CODECS, default="none",
                        help="the producer's compression.type (values become hex text)")
    parser.add_argument("--admin-overhead", action="store_true",
                        help="measure the admin API instead: off vs on and scraped every "
                             "second, same run (its own flags: --admin-overhead --help)")
    parser.add_argument("--transactional", action="store_true",
                        help="measure transactions instead: commits every 100 and 1,000 "
                             "records vs idempotent acks=all, same run (its own flags: "
                             "--transactional --help)")


ADMIN_TARGETS = {"admin_on_scraped_vs_off_msg_per_s_min": 0.97}


class _Scraper:
    """GET `url` every `every` seconds on a thread until `stop()`; counts, sizes, durations."""

    def __init__(self, url: str, every: float) -> None:
        self.url = url
        self.every = every
        self.durations_ms: list[float] = []
        self.bytes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    self.bytes = len(resp.read())
            except OSError:
                self.failures += 1
                continue
            self.durations_ms.append((time.perf_counter() - start) * 1e3)

    def stop(self) -> dict[str, object]:
        self._stop.set()
        self._thread.join(10)
        d = sorted(self.durations_ms)
        return {"scrapes": len(d), "scrape_failures": self.failures,
                "scrape_ms_p50": round(d[len(d) // 2], 2) if d else None,
                "scrape_ms_max": round(d[-1], 2) if d else None, "metrics_bytes": self.bytes}


def _admin_run(admin: bool, round_no: int, args: argparse.Namespace) -> dict[str, object]:
    with BenchBroker("redshank", cores=args.cores, pin=not args.no_pin,
                     admin_addr="127.0.0.1:0" if admin else "none") as broker:
        topic = f"bench-admin-{round_no}"
        create_topic(broker.bootstrap, topic, args.partitions)
        scraper = None
        if admin:
            assert broker.admin_url is not None
            scraper = _Scraper(broker.admin_url + "/metrics", args.scrape_every)
        cpu0, sup0 = tree_cpu_seconds(broker.pid), _own_cpu_seconds(broker.pid)
        step("measuring")
        try:
            result = produce(topic, broker.bootstrap, args.messages, args.seconds)
        finally:
            scraped = scraper.stop() if scraper is not None else {}
        cpu, sup = tree_cpu_seconds(broker.pid) - cpu0, _own_cpu_seconds(broker.pid) - sup0
        produced = result["produced"]
        assert isinstance(produced, int)
        # The supervisor process alone: where the admin API runs (cores are its children).
        return {"round": round_no, **result, **scraped, "broker_cpu_s": round(cpu, 3),
                "broker_cpu_us_per_msg": round(cpu / max(produced, 1) * 1e6, 2),
                "supervisor_cpu_s": round(sup, 3)}


def _own_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _admin_overhead(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank bench produce --admin-overhead")
    parser.add_argument("--admin-overhead", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each (default 3)")
    # Bounded by time: a run must last several scrapes.
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="bound on each run")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--cores", type=int, default=2, help="redshank --cores")
    parser.add_argument("--no-pin", action="store_true", help="redshank --no-pin")
    parser.add_argument("--scrape-every", type=float, default=1.0, help="seconds (default 1)")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, object]]] = {"off": [], "on": []}
    with Phases("bench produce --admin-overhead"):
        for r in range(args.rounds):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                phase(f"round {r + 1}/{args.rounds}: admin {mode}")
                runs[mode].append(_admin_run(mode == "on", r, args))

    def median(mode: str) -> float:
        return statistics.median(float(str(x["msg_per_s"])) for x in runs[mode])

    off, on = median("off"), median("on")
    cpu = {mode: statistics.median(float(str(x["broker_cpu_us_per_msg"])) for x in runs[mode])
           for mode in runs}
    print(json.dumps({
        "bench": "produce --admin-overhead", "record_bytes": 1024, "client": "confluent-kafka",
        "acks": "all", "partitions": args.partitions, "cores": args.cores,
        "pinned": not args.no_pin, "scrape_every_s": args.scrape_every,
        "machine_note": ("2-core machine shared with other jobs, client, broker and scraper on "
                         "the same CPUs: runs are interleaved, compare the medians"),
        "targets": ADMIN_TARGETS,
        "admin_off": {"median_msg_per_s": round(off), "runs": runs["off"]},
        "admin_on_scraped": {"median_msg_per_s": round(on), "runs": runs["on"]},
        "on_vs_off": round(on / off, 3) if off else None,
        # Less noisy than msg/s on shared CPUs: the broker's CPU per message, medians.
        "broker_cpu_us_per_msg": {"off": cpu["off"], "on": cpu["on"],
                                  "on_vs_off": round(cpu["on"] / cpu["off"], 3)
                                  if cpu["off"] else None},
    }))
    return 0


# --- --transactional ---------------------------------------------------------------------------

def produce_transactional(topic: str, bootstrap: str, messages: int, seconds: float,
                          txn_size: int | None, txn_id: str) -> dict[str, object]:
    """Produce up to `messages` 1 KiB records (at most `seconds` of producing, plus the last
    commit or flush): in transactions of `txn_size` records, each committed, or with
    `txn_size` None idempotently (acks=all), flushed at the end. Both warm up first (metadata,
    producer id, one record) outside the measured time, so the two compare like for like."""
    from confluent_kafka import KafkaError, Message, Producer

    config: dict[str, object] = {
        "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
        "linger.ms": 5, "batch.size": 1_000_000, "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576, "log_level": 0}
    if txn_size is not None:
        config["transactional.id"] = txn_id
    producer = Producer(config)
    delivered = failed = 0

    def report(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered, failed
        if err is None:
            delivered += 1
        else:
            failed += 1

    def send(n: int) -> None:
        sent = 0
        while sent < n:
            try:
                producer.produce(topic, VALUE, on_delivery=report)
                sent += 1
            except BufferError:
                producer.poll(0.01)  # queue full: let deliveries drain it
            if sent % 1000 == 0:
                producer.poll(0)

    if txn_size is not None:
        producer.init_transactions(30)
        producer.begin_transaction()
        send(1)
        producer.commit_transaction(30)
    else:
        send(1)
        producer.flush(30)
    delivered = 0
    start = time.perf_counter()
    deadline = start + seconds
    sent = transactions = 0
    step_size = txn_size or 10_000
    while sent < messages and time.perf_counter() < deadline:
        n = min(step_size, messages - sent)
        if txn_size is not None:
            producer.begin_transaction()
            send(n)
            producer.commit_transaction(30)  # flushes the transaction's records first
            transactions += 1
        else:
            send(n)
        sent += n
    left = producer.flush(30)
    elapsed = time.perf_counter() - start
    out: dict[str, object] = {
        "produced": delivered, "failed": failed, "undelivered": left,
        "seconds": round(elapsed, 3), "msg_per_s": round(delivered / elapsed),
        "mb_per_s": round(delivered * len(VALUE) / elapsed / 1e6, 1)}
    if txn_size is not None:
        out.update(txn_size=txn_size, transactions=transactions,
                   txn_per_s=round(transactions / elapsed, 1))
    return out


def _transactional(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank bench produce --transactional")
    parser.add_argument("--transactional", action="store_true")
    parser.add_argument("--txn-sizes", default="100,1000",
                        help="records per transaction, comma-separated (default 100,1000)")
    parser.add_argument("--messages", type=int, default=200_000, help="bound on each run")
    parser.add_argument("--seconds", type=float, default=10.0, help="bound on each run")
    parser.add_argument("--partitions", default="1,8", help="partition counts (default 1,8)")
    parser.add_argument("--cores", type=int, default=2, help="redshank --cores")
    parser.add_argument("--no-pin", action="store_true", help="redshank --no-pin")
    args = parser.parse_args(argv)
    try:
        sizes = [int(x) for x in args.txn_sizes.split(",")]
        parts = [int(x) for x in args.partitions.split(",")]
    except ValueError:
        parser.error("--txn-sizes and --partitions: comma-separated counts")
    if min(sizes) < 1 or min(parts) < 1 or args.messages < 1 or args.seconds <= 0:
        parser.error("sizes, partitions and --messages at least 1, --seconds positive")
    report: dict[str, object] = {
        "bench": "produce --transactional", "record_bytes": 1024, "client": "confluent-kafka",
        "acks": "all", "cores": args.cores, "pinned": not args.no_pin,
        "machine_note": ("2-core machine shared with other jobs, client and broker on the "
                         "same CPUs: compare the ratios within one run"),
    }
    with Phases("bench produce --transactional"), BenchBroker(
            "redshank", cores=args.cores, pin=not args.no_pin) as broker:
        for n in parts:
            row: dict[str, object] = {}
            modes: list[tuple[str, int | None]] = [("idempotent", None)]
            modes += [(f"txn_{size}", size) for size in sizes]
            for name, size in modes:
                topic = f"bench-txn-p{n}-{name}"
                phase(f"{n} partitions: creating {topic}")
                create_topic(broker.bootstrap, topic, n)
                phase(f"{n} partitions: {name.replace('_', ' ')}")
                cpu0 = tree_cpu_seconds(broker.pid)
                result = produce_transactional(topic, broker.bootstrap, args.messages,
                                               args.seconds, size, f"bench-txn-{n}-{name}")
                cpu = tree_cpu_seconds(broker.pid) - cpu0
                produced = result["produced"]
                assert isinstance(produced, int)
                result["broker_cpu_us_per_msg"] = round(cpu / max(produced, 1) * 1e6, 2)
                row[name] = result
            base = _rate(row["idempotent"])
            for size in sizes:
                row[f"txn_{size}_vs_idempotent"] = (
                    round(_rate(row[f"txn_{size}"]) / base, 3) if base else None)
            report[f"partitions_{n}"] = row
    print(json.dumps(report))
    return 0


def _rate(result: object) -> float:
    assert isinstance(result, dict)
    return float(result["msg_per_s"])
