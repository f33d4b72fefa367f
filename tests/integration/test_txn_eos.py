"""Exactly-once under kill -9 (KIP-98, issue 18): a consume-transform-produce loop in a process of
its own (confluent-kafka: a transactional producer, a read_committed consumer of a group,
`send_offsets_to_transaction`, a commit every K records) reads a pre-filled input topic and
writes each record transformed to an output topic. The loop is SIGKILLed mid-transaction (after
its records are written, and after its offsets are sent) and restarted; the broker is SIGKILLed
mid-transaction and restarted on the same data dir, the loop carrying on through it (the broker
and the loop both killed with offsets pending: test_txn_offsets.py). Afterwards a
read_committed consumer of the output sees every input id exactly once; a read_uncommitted one
also sees the killed transactions' aborted records (counted and printed).

The loop is this file run as a script (`python test_txn_eos.py loop ...`). `--hang-at N PHASE`
makes its N-th transaction stop after PHASE (`written`: its records acknowledged; `offsets`:
its offsets sent too) and wait for a line on stdin: the test kills whatever it means to kill at
that exact point, then writes `go` (or kills the loop). The loop prints one line per event
(`ready`, `committed TOTAL`, `hang`, `done`) and exits 0 once its positions reach the input's
end, 3 when its producer fails (fenced, or a fatal error across a broker restart): the test
restarts it, as a supervisor would.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

PARTITIONS = 3
PER_PARTITION = 1_000  # 3 x 1,000 ids, 15 transactions of 200: seconds, not minutes
COMMIT_EVERY = 200
TXN_ID = "eos-loop"
GROUP = "eos-group"
SOURCE, SINK = "eos-in", "eos-out"


def run_loop(bootstrap: str, hang_at: int, hang_phase: str) -> int:
    """The consume-transform-produce loop (the child process)."""
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    debug = os.environ.get("EOS_LOOP_DEBUG")  # librdkafka debug contexts, to the loop's log
    # No re-bootstrap (KIP-899, librdkafka 2.16's default `rebootstrap`): with every broker
    # down it decommissions the known broker, whose thread then never finishes terminating
    # (its partitions and the transaction keep references), and send_offsets_to_transaction
    # waits forever for a group coordinator after the broker is back (seen with debug=eos).
    # A short reconnect backoff: the default grows to 10 s while the broker is down.
    common = {"bootstrap.servers": bootstrap, "metadata.recovery.strategy": "none",
              "reconnect.backoff.max.ms": 500}
    producer = Producer({**common, "transactional.id": TXN_ID,
                         "transaction.timeout.ms": 30_000, "linger.ms": 5,
                         **({"debug": debug} if debug else {"log_level": 0})})
    consumer = Consumer({**common, "group.id": GROUP, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "log_level": 0})
    try:
        # First: fences a previous incarnation and aborts its open transaction, so the group's
        # committed offsets fetched next are stable (librdkafka asks with require_stable).
        producer.init_transactions(30)
        tps = [TopicPartition(SOURCE, p) for p in range(PARTITIONS)]
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
        consumer.assign(tps)  # from the group's committed offsets
        say("ready")
        txn = 0
        total = 0
        while True:
            producer.begin_transaction()
            txn += 1
            taken = 0
            idle_deadline = time.monotonic() + 2.0
            while taken < COMMIT_EVERY and time.monotonic() < idle_deadline:
                for msg in consumer.consume(COMMIT_EVERY - taken, 0.2):
                    if msg.error() is not None:
                        raise KafkaException(msg.error())
                    producer.produce(SINK, b"out:" + msg.value(), key=msg.key(),
                                     partition=msg.partition())
                    taken += 1
                positions = consumer.position(tps)
                if all(tp.offset >= end for tp, end in zip(positions, ends, strict=True)):
                    break
            hang = txn == hang_at
            if hang:
                assert producer.flush(30) == 0
                if hang_phase == "written":
                    say("hang")
                    sys.stdin.readline()
            producer.send_offsets_to_transaction(consumer.position(tps),
                                                 consumer.consumer_group_metadata(), 30)
            if hang and hang_phase == "offsets":
                say("hang")
                sys.stdin.readline()
            producer.commit_transaction(30)
            total += taken
            say(f"committed {total}")
            positions = consumer.position(tps)
            if all(tp.offset >= end for tp, end in zip(positions, ends, strict=True)):
                say("done")
                return 0
    except KafkaException as exc:
        say(f"failed {exc.args[0] if exc.args else exc}")
        return 3
    finally:
        consumer.close()


if __name__ == "__main__" and sys.argv[1:2] == ["loop"]:
    sys.exit(run_loop(sys.argv[2], int(sys.argv[3]), sys.argv[4]))

# --- The test ----------------------------------------------------------------------------------

import pytest  # noqa: E402
from broker_proc import BrokerProcess, create_topic, free_port, start_on  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

LOOP_LINE_TIMEOUT = 30.0


class Loop:
    """One run of the loop process: its stdout lines, read with a bound."""

    def __init__(self, bootstrap: str, log: Path, hang_at: int = 0,
                 hang_phase: str = "written") -> None:
        with open(log, "ab") as err:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "loop", bootstrap, str(hang_at), hang_phase],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                env=dict(os.environ))
        self.lines: list[str] = []

    def wait_for(self, *wanted: str, timeout: float = LOOP_LINE_TIMEOUT) -> str:
        """The next line starting with one of `wanted` (None at exit, which fails)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"loop: none of {wanted} within {timeout} s: {self.lines[-5:]}"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            raw = self.proc.stdout.readline()
            if not raw:
                self.proc.wait(10)
                line = f"exit {self.proc.returncode}"
            else:
                line = raw.decode().strip()
            self.lines.append(line)
            if line.startswith(wanted):
                return line
            assert not line.startswith("exit"), f"loop exited: {self.lines[-5:]}"

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()



def _prefill(bootstrap: str) -> set[bytes]:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 20, "log_level": 0})
    ids = set()
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            value = f"id-{p}-{i}".encode()
            ids.add(value)
            producer.produce(SOURCE, value, key=value, partition=p)
            if i % 500 == 0:
                producer.poll(0)
    assert producer.flush(30) == 0
    return ids


def _read_all(bootstrap: str, isolation: str) -> list[bytes]:
    """Every value of the output up to each partition's end for `isolation`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"eos-check-{isolation}",
                         "isolation.level": isolation, "enable.auto.commit": False,
                         "enable.partition.eof": True, "log_level": 0})
    try:
        consumer.assign([TopicPartition(SINK, p, 0) for p in range(PARTITIONS)])
        got: list[bytes] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + 30
        while len(at_end) < PARTITIONS:
            assert time.monotonic() < deadline, f"{isolation}: not at the end: {len(got)} read"
            for msg in consumer.consume(1000, 0.5):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    at_end.add(msg.partition())
                else:
                    got.append(msg.value())
        return got
    finally:
        consumer.close()


@pytest.mark.timeout(240)
def test_consume_transform_produce_is_exactly_once_across_kill_9(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "loop.log"
    broker = BrokerProcess(data_dir, cores=2, port=port)
    broker.start()
    loop: Loop | None = None
    kills = Counter[str]()
    try:
        create_topic(broker.bootstrap, SOURCE, PARTITIONS)
        create_topic(broker.bootstrap, SINK, PARTITIONS)
        ids = _prefill(broker.bootstrap)

        # (a) The loop killed mid-transaction: records written; then offsets sent as well.
        for hang_at, phase in ((3, "written"), (2, "offsets")):
            loop = Loop(broker.bootstrap, log, hang_at, phase)
            loop.wait_for("hang")
            loop.kill()
            kills[f"loop after {phase}"] += 1

        # (b) The broker killed mid-transaction, the loop carrying on after its restart (it
        # commits if the coordinator kept the transaction, else fails and is restarted).
        loop = Loop(broker.bootstrap, log, 2, "written")
        loop.wait_for("hang")
        broker.kill()
        kills["broker, loop carries on"] += 1
        broker = start_on(data_dir, port, within=60, ready_timeout=60)
        loop.go()
        outcome = loop.wait_for("committed", "failed", "exit", timeout=60)
        if not outcome.startswith("committed"):  # failed across the restart: start it again
            loop.kill()
            loop = Loop(broker.bootstrap, log)
        # (The broker and the loop both killed with offsets pending: test_txn_offsets.py.)
        # The loop left alone reaches the input's end.
        loop.wait_for("done", timeout=90)
        assert loop.proc.wait(10) == 0, loop.lines[-5:]

        committed = Counter(_read_all(broker.bootstrap, "read_committed"))
        want = {b"out:" + i for i in ids}
        assert set(committed) == want, (
            f"missing {len(want - set(committed))}, unexpected {len(set(committed) - want)}")
        duplicated = {v: n for v, n in committed.items() if n > 1}
        assert not duplicated, f"{len(duplicated)} ids more than once, e.g. " \
            f"{sorted(duplicated.items())[:3]}"
        uncommitted = Counter(_read_all(broker.bootstrap, "read_uncommitted"))
        aborted = sum(uncommitted.values()) - sum(committed.values())
        # Every killed transaction had written records: read_uncommitted sees them.
        assert set(uncommitted) == want and aborted > 0
        print(f"\nexactly-once: {len(ids)} ids once each under read_committed; "
              f"read_uncommitted also sees {aborted} aborted duplicates; kills: {dict(kills)}")
    finally:
        if loop is not None:
            loop.kill()
        broker.stop()
