"""A core that dies is restarted by the supervisor; meanwhile the broker answers retriable errors
only (issue 12). Core 0 hosts the topic controller: while it restarts, the other core must not
say that topics it knows do not exist (librdkafka failed queued records with
`_UNKNOWN_PARTITION`), and its own partitions answer LEADER_NOT_AVAILABLE / NOT_LEADER_OR_FOLLOWER.

Core 0 is held down deterministically by stopping the supervisor (SIGSTOP) once it has marked the
killed core DEAD and before its restart backoff ends; the control block, frozen while the
supervisor is stopped, says whether that worked (else it is let go and the kill is retried)."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from broker_proc import BrokerProcess, create_topic, recv_exact
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from test_confluent_kafka import consume_assigned

from redshank.actors.runtime import ControlBlock, CoreState, NodeDir
from redshank.cluster.kafka import assign_cores
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.list_offsets import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsResponse,
    ListOffsetsTopic,
)
from redshank.protocol.messages.metadata import (
    MetadataRequest,
    MetadataRequestTopic,
    MetadataResponse,
)
from redshank.protocol.messages.request_header import RequestHeader

ROUNDS = int(os.environ.get("CORE0_KILL_ROUNDS", "3"))
PARTITIONS = 4  # two on each core (assign_cores is round-robin)


def _pids(node: BrokerProcess) -> list[int]:
    pids: list[int] = json.loads((node.data_dir / "node.json").read_text())["pids"]
    return pids


def _wait_for(what: str, cond: Any, timeout: float, node: BrokerProcess) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; log:\n{node.log_tail()}")
        time.sleep(0.01)


def _high_watermarks(bootstrap: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)]
    finally:
        consumer.close()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("idempotent", [True, False])
@pytest.mark.parametrize("victim", [0, 1])
def test_producer_rides_through_core_restarts(tmp_path: Path, idempotent: bool,
                                              victim: int) -> None:
    """kill -9 a core (core 0 also hosts the topic controller) a few times under an acks=all
    producer with a bounded delivery timeout: no delivery fails, every acknowledged record is
    read back."""
    node = BrokerProcess(tmp_path / "data", cores=2)
    node.start()
    try:
        topic = "restarts"
        create_topic(node.bootstrap, topic, PARTITIONS)
        producer = Producer({
            "bootstrap.servers": node.bootstrap, "acks": "all",
            "enable.idempotence": idempotent, "linger.ms": 5, "message.timeout.ms": 30000,
            "retry.backoff.ms": 50, "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200,
            # librdkafka ignores "topic does not exist" for a topic it started using less than
            # this long ago (default 30 s); the producer had run for longer than that.
            "topic.metadata.propagation.max.ms": 10,
        })
        acked: dict[int, set[bytes]] = {p: set() for p in range(PARTITIONS)}
        failed: list[KafkaError] = []

        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failed.append(err)
            else:
                value = msg.value()
                assert value is not None
                acked[msg.partition()].add(value)

        seq = 0

        def produce_while(keep_going: Any, timeout: float) -> None:
            nonlocal seq
            end = time.monotonic() + timeout
            while keep_going():
                assert time.monotonic() < end, f"gave up after {timeout} s: {node.log_tail()}"
                try:
                    producer.produce(topic, value=b"%08d" % seq, partition=seq % PARTITIONS,
                                     on_delivery=report)
                    seq += 1
                except BufferError:
                    producer.poll(0.05)
                except KafkaException as exc:  # e.g. _UNKNOWN_TOPIC: the topic "went away"
                    failed.append(exc.args[0])
                    seq += 1
                producer.poll(0)
                if seq % 50 == 0:
                    time.sleep(0.01)  # a few thousand records/s: keep the backlog bounded

        for _ in range(ROUNDS):
            start = time.monotonic()
            produce_while(lambda start=start: time.monotonic() < start + 0.7, 5)
            old = _pids(node)[victim]
            os.kill(old, signal.SIGKILL)
            # Keep producing until the supervisor has started the core again, then a bit more.
            produce_while(lambda old=old: _pids(node)[victim] in (old, None), 20)
            start = time.monotonic()
            produce_while(lambda start=start: time.monotonic() < start + 0.3, 5)
        left = producer.flush(60)
        assert left == 0, f"{left} records never acknowledged"
        assert failed == [], f"{len(failed)} delivery failures: {failed[:5]}"
        assert sum(len(v) for v in acked.values()) == seq  # values are unique: a set each
        info = json.loads((node.data_dir / "node.json").read_text())
        assert info["generations"][victim] == 1 + ROUNDS
        ends = _high_watermarks(node.bootstrap, topic)
        got = consume_assigned(node.bootstrap, topic, PARTITIONS, sum(ends), timeout=30)
        for p in range(PARTITIONS):
            values = {v for _o, _k, v in got.get(p, [])}
            missing = acked[p] - values
            assert not missing, f"partition {p}: {len(missing)} acknowledged records not read"
    finally:
        node.stop()


# -- core 0 held down --------------------------------------------------------------------------

@contextmanager
def _core_down(node: BrokerProcess, core: int) -> Iterator[None]:
    """Kill `core` and keep it dead (the supervisor stopped between noticing the death and the
    restart); let everything go on exit."""
    assert node.proc is not None
    supervisor = node.proc.pid
    control = ControlBlock(NodeDir(node.data_dir).control_name(), node.cores, read_only=True)
    try:
        for _attempt in range(10):
            gen = control.generation(core)
            _wait_for(f"core {core} ready", lambda: control.ready(core), 30, node)
            os.kill(control.pid(core), signal.SIGKILL)
            _wait_for(f"core {core} marked dead", lambda gen=gen: (
                control.state(core) is CoreState.DEAD or control.generation(core) != gen), 10, node)
            os.kill(supervisor, signal.SIGSTOP)
            if control.state(core) is CoreState.DEAD and control.generation(core) == gen:
                break  # frozen before the restart
            os.kill(supervisor, signal.SIGCONT)  # the restart won the race: again
        else:
            raise AssertionError(f"could not hold core {core} down in 10 attempts")
        try:
            yield
        finally:
            os.kill(supervisor, signal.SIGCONT)
        _wait_for(f"core {core} restarted", lambda: control.ready(core), 30, node)
    finally:
        control.close()


def _request(sock: socket.socket, key: int, version: int, corr: int, body: bytes) -> bytes:
    header = RequestHeader(key, version, corr, "probe").encode(1 if version < 9 else 2)
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    data = recv_exact(sock, size)
    assert struct.unpack(">i", data[:4])[0] == corr
    return data[4 + (1 if version >= 9 else 0):]  # flexible response header: empty tags


def _metadata(bootstrap: str, names: list[str] | None, version: int = 9) -> MetadataResponse:
    topics = None if names is None else tuple(MetadataRequestTopic(name=n) for n in names)
    req = MetadataRequest(topics=topics, allow_auto_topic_creation=False)
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.settimeout(10)
        return MetadataResponse.decode(_request(sock, 3, version, 11, req.encode(version)),
                                       version)


def _list_offsets(bootstrap: str, topic: str, partitions: int) -> ListOffsetsResponse:
    req = ListOffsetsRequest(replica_id=-1, topics=(ListOffsetsTopic(topic, tuple(
        ListOffsetsPartition(partition_index=p, timestamp=-1) for p in range(partitions))),))
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.settimeout(10)
        return ListOffsetsResponse.decode(_request(sock, 2, 5, 12, req.encode(5)), 5)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("victim", [0, 1])
def test_metadata_while_a_core_is_down_is_retriable_and_lists_known_topics(
        tmp_path: Path, victim: int) -> None:
    """Core 0 down: the controller too, the other core answers from its topic cache. Core 1
    down: the controller answers. Either way, the dead core's partitions have no leader."""
    node = BrokerProcess(tmp_path / "data", cores=2)
    node.start()
    try:
        create_topic(node.bootstrap, "known", 2)  # one partition per core
        create_topic(node.bootstrap, "other", 1)
        up = _metadata(node.bootstrap, ["known"])
        owner0 = {p.partition_index for p in up.topics[0].partitions}
        assert len(owner0) == 2 and up.topics[0].error_code == 0
        cores = assign_cores("known", 2, 2)
        with _core_down(node, victim):
            # Every connection now lands on the other core (the victim's listener is gone).
            named = _metadata(node.bootstrap, ["known", "never-created"])
            by_name = {t.name: t for t in named.topics}
            known = by_name["known"]
            assert known.error_code == ErrorCode.NONE, known
            parts = {p.partition_index: p for p in known.partitions}
            assert sorted(parts) == [0, 1]
            for p, core in enumerate(cores):
                if core == victim:
                    assert parts[p].error_code == ErrorCode.LEADER_NOT_AVAILABLE
                    assert parts[p].leader_id == -1
                else:
                    assert parts[p].error_code == ErrorCode.NONE
                    assert parts[p].leader_id == up.brokers[0].node_id
            # Core 1 does not know it and the controller cannot say: retriable, not "unknown".
            # With core 0 up, the controller knows it does not exist.
            assert by_name["never-created"].error_code == (
                ErrorCode.LEADER_NOT_AVAILABLE if victim == 0
                else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            everything = _metadata(node.bootstrap, None)
            assert {"known", "other"} <= {t.name for t in everything.topics}
            assert all(t.error_code != ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                       for t in everything.topics)
            assert everything.cluster_id == up.cluster_id
            offsets = _list_offsets(node.bootstrap, "known", 2)
            codes = {p.partition_index: p.error_code for p in offsets.topics[0].partitions}
            assert codes == {p: (ErrorCode.NOT_LEADER_OR_FOLLOWER if core == victim
                                 else ErrorCode.NONE) for p, core in enumerate(cores)}
        # The core is back: everything answers again.
        deadline = time.monotonic() + 20
        while True:
            after = _metadata(node.bootstrap, ["known"])
            if all(p.error_code == 0 for p in after.topics[0].partitions):
                break
            assert time.monotonic() < deadline, after
            time.sleep(0.05)
    finally:
        node.stop()


@pytest.mark.timeout(150)
def test_group_consumer_rides_through_core0_restarts(tmp_path: Path) -> None:
    """A subscribed consumer (classic group, auto-commit) reads a topic while core 0 (the
    controller's core, and a share of the partitions and group coordinators) is killed twice:
    it sees no error and reads every record (at least once)."""
    node = BrokerProcess(tmp_path / "data", cores=2)
    node.start()
    try:
        topic = "consumed"
        create_topic(node.bootstrap, topic, PARTITIONS)
        producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all",
                             "linger.ms": 5, "batch.num.messages": 20})  # small batches
        total = 3000
        for i in range(total):
            producer.produce(topic, value=b"%06d" % i, partition=i % PARTITIONS)
            producer.poll(0)
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "riders",
                             "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
                             "topic.metadata.propagation.max.ms": 10,
                             # Many small fetches, little read ahead: the consumer keeps
                             # asking the broker through the restarts.
                             "max.partition.fetch.bytes": 1024, "queued.min.messages": 20})
        seen: set[bytes] = set()
        errors: list[KafkaError] = []
        kills = killed_at = 0
        deadline = time.monotonic() + 90
        try:
            consumer.subscribe([topic])
            while len(seen) < total:
                assert time.monotonic() < deadline, (
                    f"{len(seen)} of {total} read, errors {errors[:5]}; {node.log_tail()}")
                msg = consumer.poll(0.1)
                if msg is not None:
                    err = msg.error()
                    if err is not None:
                        errors.append(err)
                    elif (value := msg.value()) is not None:
                        seen.add(value)
                # Kill core 0 after a third and after two thirds of the records.
                if kills < 2 and len(seen) >= total * (kills + 1) // 3:
                    os.kill(_pids(node)[0], signal.SIGKILL)
                    kills += 1
                    killed_at = len(seen)
        finally:
            consumer.close()
        assert kills == 2 and killed_at < total  # the second kill came while still reading
        assert errors == []
        assert seen == {b"%06d" % i for i in range(total)}
    finally:
        node.stop()
