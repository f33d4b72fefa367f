"""Data transforms with real clients: `redshank transform deploy/list/delete` against a broker,
records produced and consumed with confluent-kafka.

One two-core broker for the module (the restart test has its own, on a fixed port): an
upper-casing transform's exact output; a transform that forwards its input records (key, value,
headers and timestamp as they came, partitioned by key into a smaller output); a transform
that raises (retried, shown failing, then
recovers); a module that does not import is refused; list and delete; and a SIGKILL of the
broker mid-stream, after which every input record is in the output at least once
(duplicates counted and printed: at-least-once allows them), and after a SIGKILLed core
restarts its instances resume; an output batch refused while later flushes are in flight
does not reorder the output (idempotent output: the later ones wait for it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, create_topic, free_port, start_on
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from transform_helpers import (
    TRANSFORMS_PY,
    cli,
    consume_all,
    listed,
    produce,
    wait_for,
    written,
)

from redshank.actors.transform_spec import TRANSFORMS_TOPIC, Deployment, output_partition


def caught_up(cwd: Path, bootstrap: str, name: str, partitions: int) -> bool:
    t = listed(cwd, bootstrap).get(name)
    return t is not None and len(t["instances"]) == partitions and all(
        i["status"] == "running" and i["lag"] == 0 for i in t["instances"])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("xform") / "data", cores=2)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("xform-src")
    (cwd / "xforms.py").write_text(TRANSFORMS_PY)
    return cwd


@pytest.mark.timeout(120)
def test_upper_transform_exact_output(node: BrokerProcess, workdir: Path) -> None:
    create_topic(node.bootstrap, "up-in", 3)
    create_topic(node.bootstrap, "up-out", 3)
    out = cli(workdir, node.bootstrap, "deploy", "--name", "upper", "--input", "up-in",
              "--output", "up-out", "xforms:Upper")
    assert out.returncode == 0, out.stderr
    n = 600
    records = [(b"k%d" % i, b"value-%d" % i) for i in range(n)]
    produce(node.bootstrap, "up-in", records)
    wait_for("the transform to catch up", lambda: caught_up(workdir, node.bootstrap,
                                                              "upper", 3))
    got = consume_all(node.bootstrap, "up-out", 3)
    inputs = consume_all(node.bootstrap, "up-in", 3)
    # Exactly the expected records, each in the partition of its input (same count: 3).
    assert Counter(got) == Counter((p, k, v.upper() if v else v) for p, k, v in inputs)
    assert len(got) == n
    listing = listed(workdir, node.bootstrap)["upper"]
    assert sum(i["processed"] for i in listing["instances"]) == n
    assert all(i["failed"] == 0 for i in listing["instances"])


@pytest.mark.timeout(120)
def test_forwarded_records_keep_key_value_headers_and_timestamp(node: BrokerProcess,
                                                                workdir: Path) -> None:
    """`process` returning or yielding the input record: the output holds the record as it
    came, its timestamp the input's (an hour ago here, not the time of the output), in the
    output partition an `Output` would go to (input partition 2 of 3 into 2: by the key's
    hash, or 2 % 2 without one)."""
    create_topic(node.bootstrap, "fwd-in", 3)
    create_topic(node.bootstrap, "fwd-out", 2)
    out = cli(workdir, node.bootstrap, "deploy", "--name", "forward", "--input", "fwd-in",
              "--output", "fwd-out", "xforms:Forward")
    assert out.returncode == 0, out.stderr
    hour_ago = int(time.time() * 1000) - 3_600_000
    Sent = tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...], int]
    sent: list[Sent] = []
    for i in range(90):
        key = None if i % 4 == 0 else b"key-%d" % i
        value = None if i % 9 == 0 else b"%d" % i * (1 + i * 37 % 3000)  # up to 12 KB
        headers = (("h", b"%d" % i), ("none", None)) if i % 2 else ()
        sent.append((i % 3, key, value, headers, hour_ago + i * 10))
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    for part, key, value, headers, ts in sent:
        producer.produce("fwd-in", value=value, key=key, partition=part,
                         headers=list(headers) or None, timestamp=ts)
    assert producer.flush(30) == 0
    wait_for("the transform to catch up", lambda: caught_up(workdir, node.bootstrap,
                                                              "forward", 3))
    got: list[Sent] = []
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "check-fwd-out",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    try:
        consumer.assign([TopicPartition("fwd-out", p, 0) for p in range(2)])
        deadline = time.monotonic() + 20
        while len(got) < len(sent):
            assert time.monotonic() < deadline, f"read {len(got)} of {len(sent)}"
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            tstype, ts = msg.timestamp()
            assert tstype == 1  # CreateTime
            part = msg.partition()
            assert part is not None
            got.append((part, msg.key(), msg.value(), tuple(msg.headers() or ()), ts))
    finally:
        consumer.close()
    assert Counter(got) == Counter(
        (output_partition(p, key, 2), key, value, headers, ts)
        for p, key, value, headers, ts in sent)
    assert {p for p, *_rest in got} == {0, 1}
    listing = listed(workdir, node.bootstrap)["forward"]
    assert sum(i["processed"] for i in listing["instances"]) == len(sent)
    assert all(i["failed"] == 0 for i in listing["instances"])


@pytest.mark.timeout(120)
def test_raising_transform_is_retried_then_passes(node: BrokerProcess, workdir: Path) -> None:
    create_topic(node.bootstrap, "fail-in", 1)
    create_topic(node.bootstrap, "fail-out", 1)
    out = cli(workdir, node.bootstrap, "deploy", "--name", "twice", "--input", "fail-in",
              "--output", "fail-out", "xforms:TwiceFails")
    assert out.returncode == 0, out.stderr
    produce(node.bootstrap, "fail-in", [(None, b"a"), (None, b"boom"), (None, b"c")])
    wait_for("the retries to pass", lambda: caught_up(workdir, node.bootstrap, "twice", 1))
    assert [v for _p, _k, v in consume_all(node.bootstrap, "fail-out", 1)] == [
        b"a", b"boom", b"c"]
    (inst,) = listed(workdir, node.bootstrap)["twice"]["instances"]
    assert (inst["processed"], inst["failed"]) == (3, 2)
    assert "ValueError('boom 2')" in inst["error"]


@pytest.mark.timeout(120)
def test_failing_transform_shows_failing_and_recovers(node: BrokerProcess, workdir: Path,
                                                      tmp_path: Path) -> None:
    create_topic(node.bootstrap, "wait-in", 1)
    create_topic(node.bootstrap, "wait-out", 1)
    out = cli(workdir, node.bootstrap, "deploy", "--name", "marker", "--input", "wait-in",
              "--output", "wait-out", "xforms:UntilMarker")
    assert out.returncode == 0, out.stderr
    marker = tmp_path / "marker"
    produce(node.bootstrap, "wait-in", [(None, b"one"), (str(marker).encode(), b"wait"),
                                        (None, b"three")])

    def failing() -> bool:
        (inst,) = listed(workdir, node.bootstrap)["marker"]["instances"] or [None]
        return inst is not None and inst["status"] == "failing" and inst["failed"] >= 1 \
            and "marker missing" in (inst["error"] or "")

    wait_for("the instance to show failing", failing)
    marker.write_text("")
    wait_for("the instance to recover", lambda: caught_up(workdir, node.bootstrap, "marker", 1))
    assert [v for _p, _k, v in consume_all(node.bootstrap, "wait-out", 1)] == [
        b"one", b"wait", b"three"]


@pytest.mark.timeout(60)
def test_deploy_refuses_what_does_not_load(node: BrokerProcess, workdir: Path) -> None:
    (workdir / "broken.py").write_text("import no_such_module_anywhere\n")
    (workdir / "pkg").mkdir(exist_ok=True)
    (workdir / "pkg" / "__init__.py").write_text("")
    create_topic(node.bootstrap, "bad-in", 1)
    cases = {"broken:X": "No module named 'no_such_module_anywhere'",
             "xforms:Missing": "defines no Transform class 'Missing'",
             "pkg:X": "packages and multi-file modules are not supported",
             "nowhere:X": "cannot find module 'nowhere'"}
    for target, why in cases.items():
        out = cli(workdir, node.bootstrap, "deploy", "--name", "bad", "--input", "bad-in",
                  "--output", "bad-in-out", target)
        assert out.returncode == 1, (target, out.stdout, out.stderr)
        assert why in out.stderr, (target, out.stderr)
    out = cli(workdir, node.bootstrap, "deploy", "--name", "bad", "--input", "bad-in",
              "--output", "no-such-topic", "xforms:Ident")
    assert out.returncode == 4, out.stderr
    assert "bad" not in listed(workdir, node.bootstrap)


@pytest.mark.timeout(60)
def test_source_failing_in_the_broker_shows_failing(node: BrokerProcess, workdir: Path) -> None:
    """A deployment whose source does not load in the broker (written to __transforms without
    the CLI's check) runs no user code and shows failing with the error."""
    create_topic(node.bootstrap, "noload-in", 1)
    create_topic(node.bootstrap, "noload-out", 1)
    # The topic exists once a deploy ran; here a valid deploy first, then the broken record.
    out = cli(workdir, node.bootstrap, "deploy", "--name", "noload", "--input", "noload-in",
              "--output", "noload-out", "xforms:Ident")
    assert out.returncode == 0, out.stderr
    dep = Deployment("noload", "noload-in", ("noload-out",), "X", "gone.py",
                     "import not_on_the_broker_path\n")
    produce(node.bootstrap, TRANSFORMS_TOPIC, [(b"noload", dep.encode())], partition=0)

    def failing() -> bool:
        t = listed(workdir, node.bootstrap)["noload"]
        return t["class"] == "gone.py:X" and [i["status"] for i in t["instances"]] == [
            "failing"] and "not_on_the_broker_path" in (t["instances"][0]["error"] or "")

    wait_for("the load error to show", failing)
    assert cli(workdir, node.bootstrap, "delete", "--name", "noload").returncode == 0


@pytest.mark.timeout(60)
def test_list_and_delete(node: BrokerProcess, workdir: Path) -> None:
    create_topic(node.bootstrap, "del-in", 2)
    create_topic(node.bootstrap, "del-out", 1)
    out = cli(workdir, node.bootstrap, "deploy", "--name", "gone", "--input", "del-in",
              "--output", "del-out", "xforms:Ident")
    assert out.returncode == 0, out.stderr
    wait_for("two running instances", lambda: caught_up(workdir, node.bootstrap, "gone", 2))
    t = listed(workdir, node.bootstrap)["gone"]
    assert (t["input"], t["outputs"], t["class"]) == ("del-in", ["del-out"], "xforms.py:Ident")
    assert sorted(i["partition"] for i in t["instances"]) == [0, 1]
    stats = subprocess.run([sys.executable, "-m", "redshank.tools.cli", "actors",
                            "--node-dir", str(node.data_dir), "--json"],
                           capture_output=True, text=True, timeout=30)
    assert "transform/gone/0" in stats.stdout and "transform/gone/1" in stats.stdout
    out = cli(workdir, node.bootstrap, "delete", "--name", "gone")
    assert out.returncode == 0, out.stderr
    assert "gone" not in listed(workdir, node.bootstrap)
    assert cli(workdir, node.bootstrap, "delete", "--name", "gone").returncode == 4

    def stopped() -> bool:
        stats = subprocess.run([sys.executable, "-m", "redshank.tools.cli", "actors",
                                "--node-dir", str(node.data_dir), "--json"],
                               capture_output=True, text=True, timeout=30)
        return "transform/gone/" not in stats.stdout

    wait_for("the instances to stop", stopped)



@pytest.mark.timeout(180)
def test_sigkill_mid_stream_loses_nothing(tmp_path: Path, workdir: Path) -> None:
    port = free_port()
    node = start_on(tmp_path / "data", port)
    try:
        create_topic(node.bootstrap, "kill-in", 3)
        create_topic(node.bootstrap, "kill-out", 3)
        out = cli(workdir, node.bootstrap, "deploy", "--name", "ident", "--input", "kill-in",
                  "--output", "kill-out", "xforms:Ident")
        assert out.returncode == 0, out.stderr
        total = 3000
        producer = Producer({
            "bootstrap.servers": node.bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 90000, "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 300, "retry.backoff.ms": 50})
        failed: list[KafkaError] = []

        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append(err)

        produced = threading.Event()

        def run() -> None:  # ~1,000 records/s for 3 s, whatever the broker does meanwhile
            for i in range(total):
                while True:
                    try:
                        producer.produce("kill-in", value=b"%06d" % i, key=b"%d" % i,
                                         on_delivery=report)
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
                if i % 10 == 9:
                    time.sleep(0.01)
            produced.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        # Mid-stream: once the transform has written part of it.
        wait_for("some output", lambda: written(node.bootstrap, "kill-out", 3) >= 300, 30)
        node.kill()
        time.sleep(0.3)
        node = start_on(tmp_path / "data", port)
        thread.join(60)
        assert produced.is_set()
        assert producer.flush(60) == 0
        assert failed == [], f"delivery failures: {failed[:5]}"
        wait_for("the transform to catch up", lambda: caught_up(
            workdir, node.bootstrap, "ident", 3), 60)
        inputs = consume_all(node.bootstrap, "kill-in", 3)
        outputs = consume_all(node.bootstrap, "kill-out", 3)
        assert sorted(v for _p, _k, v in inputs) == [b"%06d" % i for i in range(total)]
        seen = Counter(v for _p, _k, v in outputs)
        missing = [v for _p, _k, v in inputs if v not in seen]
        assert not missing, f"{len(missing)} input records never reached the output"
        duplicates = sum(c - 1 for c in seen.values())
        print(f"\ntransform restart: {total} records, {duplicates} duplicated in the output "
              f"(at-least-once)")
        # Each output record sits in its input's partition (3 and 3 partitions).
        assert set(outputs) <= set(inputs)

        # One core SIGKILLed: the supervisor restarts it, its instances resume.
        info = json.loads((node.data_dir / "node.json").read_text())
        os.kill(info["pids"][1], signal.SIGKILL)
        more = [(b"%d" % i, b"%06d" % i) for i in range(total, total + 300)]
        produce(node.bootstrap, "kill-in", more)
        wait_for("the transform to catch up after the core restart", lambda: caught_up(
            workdir, node.bootstrap, "ident", 3), 60)
        seen = Counter(v for _p, _k, v in consume_all(node.bootstrap, "kill-out", 3))
        assert all(seen[v] for _k, v in more)
    finally:
        node.stop()


@pytest.mark.timeout(120)
def test_transactional_input_is_read_committed(node: BrokerProcess, workdir: Path) -> None:
    """Committed transactions and plain records go through; an aborted transaction's records
    never do; an open transaction holds the instance at its first offset (the last stable
    offset) until it commits."""
    create_topic(node.bootstrap, "txin", 1)
    create_topic(node.bootstrap, "txout", 1)
    out = cli(workdir, node.bootstrap, "deploy", "--name", "txident", "--input", "txin",
              "--output", "txout", "xforms:Ident")
    assert out.returncode == 0, out.stderr
    txp = Producer({"bootstrap.servers": node.bootstrap, "transactional.id": "xform-txin"})
    txp.init_transactions(30)
    txp.begin_transaction()
    for v in (b"a1", b"a2"):
        txp.produce("txin", value=v, partition=0)
    txp.commit_transaction(30)  # a1 0, a2 1, COMMIT 2
    txp.begin_transaction()
    for v in (b"b1", b"b2"):
        txp.produce("txin", value=v, partition=0)
    assert txp.flush(30) == 0  # written, so that the abort has records to hide
    txp.abort_transaction(30)  # b1 3, b2 4, ABORT 5
    produce(node.bootstrap, "txin", [(None, b"c1")], partition=0)  # 6
    txp.begin_transaction()
    txp.produce("txin", value=b"d1", partition=0)  # 7, open
    assert txp.flush(30) == 0

    def held() -> bool:
        # `transform list` counts lag up to the last stable offset (its high_watermark).
        t = listed(workdir, node.bootstrap).get("txident")
        return t is not None and len(t["instances"]) == 1 and \
            t["instances"][0]["processed"] == 3 and t["instances"][0]["offset"] == 7

    wait_for("the instance to stop at the open transaction", held)
    reader = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "txin-hw",
                       "isolation.level": "read_uncommitted"})
    try:  # d1 is written (the high watermark is past it) but not handed to the transform
        assert reader.get_watermark_offsets(TopicPartition("txin", 0), timeout=10)[1] == 8
    finally:
        reader.close()
    assert [v for _p, _k, v in consume_all(node.bootstrap, "txout", 1)] == [
        b"a1", b"a2", b"c1"]
    txp.commit_transaction(30)  # COMMIT 8
    wait_for("the committed transaction to go through",
             lambda: caught_up(workdir, node.bootstrap, "txident", 1))
    assert [v for _p, _k, v in consume_all(node.bootstrap, "txout", 1)] == [
        b"a1", b"a2", b"c1", b"d1"]


@pytest.mark.timeout(120)
def test_a_refused_flush_does_not_reorder_the_output(node: BrokerProcess, workdir: Path
                                                     ) -> None:
    """One output batch is refused (above the output topic's max.message.bytes) while the
    flushes after it are in flight, until the topic is altered to take it: the output is an
    idempotent producer's, so the later batches are refused as out of sequence rather than
    written before it, and once it lands they follow. Every record exactly once, in input
    order (before: the records after the refused batch were written first)."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    create_topic(node.bootstrap, "ro-in", 1)
    create_topic(node.bootstrap, "ro-out", 1)
    n, big_at = 3000, 1500  # about 3 MiB of output: several flushes after the refused one
    values = [b"big" if i == big_at else b"%06d" % i + b"." * 1018 for i in range(n)]
    produce(node.bootstrap, "ro-in", [(None, v) for v in values])
    out = cli(workdir, node.bootstrap, "deploy", "--name", "ro", "--input", "ro-in",
              "--output", "ro-out", "xforms:Big")
    assert out.returncode == 0, out.stderr
    # The records before the big one are written; it is refused (MESSAGE_TOO_LARGE, retried
    # with backoff) and the flushes after it are sent meanwhile.
    wait_for("the records before the refused batch", lambda: written(
        node.bootstrap, "ro-out", 1) >= big_at)
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    resource = ConfigResource("topic", "ro-out", incremental_configs=[ConfigEntry(
        "max.message.bytes", "2000000", incremental_operation=AlterConfigOpType.SET)])
    for fut in admin.incremental_alter_configs([resource], request_timeout=15).values():
        fut.result(20)
    wait_for("the transform to catch up", lambda: caught_up(workdir, node.bootstrap, "ro", 1),
             timeout=60)
    got = [v for _p, _k, v in consume_all(node.bootstrap, "ro-out", 1)]
    expected = [b"B" * 1_200_000 if v == b"big" else v for v in values]
    assert len(got) == n
    assert got == expected
