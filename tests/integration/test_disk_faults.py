"""Disk faults at the broker level: real broker processes whose disk writers run on the
fault-injecting file layer ($REDSHANK_DISK_FAULTS names its control file, see
storage/fault_files.py), driven by raw requests and confluent-kafka.

- An idempotent retry of a batch whose fdatasync is slow is not acknowledged before that
  fdatasync ends (the broker logs each sync's start and end on CLOCK_MONOTONIC, the clock the
  test reads when the answer arrives).
- A full disk (ENOSPC on every write): produces fail and are retried by the client, reads go
  on; the broker is killed -9 while full and restarted: every acknowledged record is there,
  exactly once, and the idempotent producer finishes without an error.
- An fdatasync EIO window (or a failing syncfs shared by a flush round's logs, or a full disk):
  the partition says storage_error in `redshank actors`, reopens its log by recovery (or
  flushes its queued batches again once space returns), and acks resume in the same broker
  process; every ack is there once.
- An fdatasync EIO on a `__consumer_offsets` log: offset commits work again without a restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_proc import BrokerProcess, create_topic, free_port, recv_exact, start_on
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from test_confluent_kafka import consume_assigned

from redshank.actors.runtime.node_stats import read_node_stats
from redshank.protocol.api_versions import ApiKey, request_header_version, response_header_version
from redshank.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    ProduceResponse,
    TopicProduceData,
)
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader
from redshank.protocol.records import Record, build_batch
from redshank.storage.fault_files import ENV

TIMEOUT = 30.0
PARTITIONS = 2


class Faults:
    """The broker's fault control file: written atomically, read by the broker on each call."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, **spec: Any) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec))
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture
def faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    control = Faults(tmp_path / "faults.json")
    monkeypatch.setenv(ENV, str(control.path))  # the broker processes inherit it
    yield control
    control.clear()



def _kill9(node: BrokerProcess) -> None:
    """SIGKILL the supervisor and every core at once, and wait until all are gone."""
    pids = json.loads((node.data_dir / "node.json").read_text())["pids"]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    node.kill()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "cores still alive after SIGKILL"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _produce_raw(sock: socket.socket, corr: int, topic: str, batch: bytes) -> None:
    version = 9
    key = ApiKey.PRODUCE
    request = ProduceRequest(acks=-1, timeout_ms=30000, topic_data=(
        TopicProduceData(topic, (PartitionProduceData(0, batch),)),))
    body = RequestHeader(key, version, corr, "fault-test").encode(
        request_header_version(key, version)) + request.encode(version)
    sock.sendall(struct.pack(">i", len(body)) + body)


def _read_produce(sock: socket.socket, corr: int) -> tuple[int, int, int]:
    """(error code, base offset, CLOCK_MONOTONIC ns when the answer arrived)."""
    version = 9
    frame = recv_exact(sock, struct.unpack(">i", recv_exact(sock, 4))[0])
    arrived = time.monotonic_ns()
    head, pos = ResponseHeader.decode_from(frame, 0,
                                           response_header_version(ApiKey.PRODUCE, version))
    assert head.correlation_id == corr
    part = ProduceResponse.decode(frame[pos:], version).responses[0].partition_responses[0]
    return part.error_code, part.base_offset, arrived


@pytest.mark.timeout(90)
def test_idempotent_retry_is_not_acked_before_the_flush_of_its_original(
        tmp_path: Path, faults: Faults) -> None:
    events = tmp_path / "syncs"
    faults.set(match="kafka/slow-0", delay_ms={"fdatasync": 500}, events=str(events))
    node = start_on(tmp_path / "data", cores=1)
    try:
        create_topic(node.bootstrap, "slow", 1)
        host, port = node.bootstrap.rsplit(":", 1)
        first = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        retry = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        try:
            batch = build_batch([Record(i, 1000, None, b"v%d" % i) for i in range(3)],
                                producer_id=4242, producer_epoch=0, base_sequence=0)
            sent = time.monotonic_ns()
            _produce_raw(first, 1, "slow", batch)
            _produce_raw(retry, 1, "slow", batch)  # the client's retry on another connection
            code_r, base_r, retry_at = _read_produce(retry, 1)
            code_f, base_f, _ = _read_produce(first, 1)
        finally:
            first.close()
            retry.close()
        assert (code_f, base_f) == (0, 0)
        assert (code_r, base_r) == (0, 0)  # deduplicated: the original's offset
        syncs = [line.split() for line in events.read_text().splitlines()]
        ends = [int(end) for _op, start, end, outcome, _path in syncs
                if outcome == "ok" and int(start) >= sent]
        assert ends, f"no fdatasync of the partition after the produce: {syncs}"
        assert retry_at >= min(ends), (
            f"retry answered {(min(ends) - retry_at) / 1e6:.1f} ms before its original's "
            "fdatasync ended")
        got = consume_assigned(node.bootstrap, "slow", 1, 3)
        assert [o for o, _k, _v in got[0]] == [0, 1, 2]  # stored once
    finally:
        node.stop()


class _Load:
    """An idempotent acks=all confluent-kafka producer with its delivery reports."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 120000, "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 300, "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 300,
        })
        self.acked: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        self.failed: list[KafkaError] = []
        self.seq = 0

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed.append(err)
        else:
            value = msg.value()
            assert value is not None
            self.acked[msg.partition()].append(value)

    def acks(self) -> int:
        return sum(len(v) for v in self.acked.values())

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Produce ~2k records/s for `seconds` (or until `until()` holds, at most `seconds`)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until is not None and until()):
            try:
                self.producer.produce(self.topic, value=b"%08d" % self.seq,
                                      partition=self.seq % PARTITIONS, on_delivery=self._report)
                self.seq += 1
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)
            if self.seq % 20 == 0:
                time.sleep(0.01)

    def finish(self) -> None:
        left = self.producer.flush(90)
        assert left == 0, f"{left} records never acknowledged"
        assert self.failed == [], f"delivery failures: {self.failed[:5]}"
        assert self.acks() == self.seq, f"{self.seq} produced, {self.acks()} acknowledged"

    def check_stored(self, bootstrap: str) -> None:
        """Every acknowledged record is stored exactly once, offsets dense."""
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw"})
        try:
            ends = [consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                    for p in range(PARTITIONS)]
        finally:
            consumer.close()
        got = consume_assigned(bootstrap, self.topic, PARTITIONS, sum(ends), timeout=30)
        for p in range(PARTITIONS):
            records = got.get(p, [])
            assert [o for o, _k, _v in records] == list(range(ends[p])), (
                f"partition {p}: offsets not dense")
            values = [v for _o, _k, v in records]
            assert len(values) == len(set(values)), f"partition {p}: duplicated records"
            missing = set(self.acked[p]) - set(values)
            assert not missing, f"partition {p}: {len(missing)} acknowledged records lost"


@pytest.mark.timeout(180)
def test_disk_full_then_kill9_loses_no_acknowledged_record(
        tmp_path: Path, faults: Faults) -> None:
    port = free_port()
    node = start_on(tmp_path / "data", port)
    try:
        create_topic(node.bootstrap, "full", PARTITIONS)
        load = _Load(node.bootstrap, "full")
        load.run(1.0)
        assert load.producer.flush(30) == 0 and load.acks() == load.seq > 0
        before = {p: list(v) for p, v in load.acked.items()}
        faults.set(match="kafka/full-", fail={"pwrite": "ENOSPC", "fallocate": "ENOSPC"})
        load.run(2.0)
        # Reads go on while the disk is full: everything acknowledged before is served.
        got = consume_assigned(node.bootstrap, "full", PARTITIONS,
                               sum(len(v) for v in before.values()), timeout=20)
        for p in range(PARTITIONS):
            assert set(before[p]) <= {v for _o, _k, v in got.get(p, [])}
        load.run(1.0)
        _kill9(node)  # while still full: no core may flush on its way out
        faults.clear()
        node = start_on(tmp_path / "data", port)
        load.run(0.5)
        load.finish()
        load.check_stored(node.bootstrap)
    finally:
        node.stop()


def _partition_status(node: BrokerProcess, topic: str) -> list[str]:
    stats = read_node_stats(node.data_dir)
    return [a.get("status", "") for core in stats["cores"] for a in core.get("actors", ())
            if str(a.get("name", "")).startswith(f"partition/{topic}/")]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fail", [{"fdatasync": "EIO"},
                                  {"syncfs": "EIO"},
                                  {"pwrite": "ENOSPC", "fallocate": "ENOSPC"}],
                         ids=["fsync-eio", "syncfs-eio", "disk-full"])
def test_disk_fault_window_then_acks_resume_without_a_restart(
        tmp_path: Path, faults: Faults, fail: dict[str, str]) -> None:
    # syncfs: both partitions on one core, so its flush rounds share a syncfs (file_io.sync_all)
    node = start_on(tmp_path / "data", cores=1 if "syncfs" in fail else 2)
    try:
        pid = node.proc.pid if node.proc is not None else -1
        cores = json.loads((node.data_dir / "node.json").read_text())["pids"]
        create_topic(node.bootstrap, "eio", PARTITIONS)
        load = _Load(node.bootstrap, "eio")
        load.run(1.0)
        assert load.producer.flush(30) == 0
        faults.set(match="kafka/eio-", fail=fail)
        seen: list[str] = []

        def failing() -> bool:
            seen[:] = _partition_status(node, "eio")
            return any(s.startswith("storage_error") for s in seen)

        load.run(20.0, until=failing)
        assert failing(), f"no partition reported the failing disk: {seen}"
        acked_in_window = load.acks()
        load.run(1.0)
        faults.clear()
        load.run(1.0)
        load.finish()
        assert load.acks() > acked_in_window  # acks resumed ...
        assert node.proc is not None and node.proc.poll() is None and node.proc.pid == pid
        # ... in the same broker process, and no core was restarted.
        assert json.loads((node.data_dir / "node.json").read_text())["pids"] == cores
        deadline = time.monotonic() + 20
        while any(s != "ok" for s in _partition_status(node, "eio")):
            assert time.monotonic() < deadline, _partition_status(node, "eio")
            time.sleep(0.1)
        load.check_stored(node.bootstrap)
    finally:
        node.stop()


@pytest.mark.timeout(120)
def test_offset_commits_resume_after_an_fsync_eio_on_the_group_log(
        tmp_path: Path, faults: Faults) -> None:
    """The `__consumer_offsets` partition's fdatasync fails: commits fail meanwhile, the group
    host reopens its log from disk on the next request, and commits work again in the same
    broker process, the durable ones kept."""
    node = start_on(tmp_path / "data", cores=1)
    consumer = None
    try:
        pid = node.proc.pid if node.proc is not None else -1
        create_topic(node.bootstrap, "gt", 1)
        consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "eio-group",
                             "enable.auto.commit": False})
        tp = TopicPartition("gt", 0)

        def commit(offset: int) -> bool:
            assert consumer is not None
            try:
                out = consumer.commit(offsets=[TopicPartition("gt", 0, offset)],
                                      asynchronous=False)
            except KafkaException:
                return False
            return bool(out) and all(t.error is None for t in out)

        def commit_until_ok(offset: int) -> None:
            deadline = time.monotonic() + 30
            while not commit(offset):
                assert time.monotonic() < deadline, f"commit of {offset} never succeeded"
                time.sleep(0.1)

        commit_until_ok(3)
        faults.set(match="kafka/__consumer_offsets-", fail={"fdatasync": "EIO"})
        assert not commit(4)  # its flush fails
        faults.clear()
        commit_until_ok(5)
        assert consumer.committed([tp], timeout=10)[0].offset == 5
        assert node.proc is not None and node.proc.poll() is None and node.proc.pid == pid
        assert "group_log_failed_reopening_on_next_use" in node.log_tail(200)
    finally:
        if consumer is not None:
            consumer.close()
        node.stop()
