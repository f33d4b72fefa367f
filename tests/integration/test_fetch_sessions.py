"""Incremental fetch sessions (KIP-227) on a real two-core broker.

Raw Fetch v12 requests on one connection (a core keeps its own sessions) walk a session's life:
a full fetch creates it and carries every partition; an incremental fetch reads every partition
of the session but carries only those that changed, and its long-poll wakes on a partition the
request did not name; a forgotten partition is no longer read; a wrong epoch gets
INVALID_FETCH_SESSION_EPOCH and the session goes on; an unknown or closed session gets
FETCH_SESSION_ID_NOT_FOUND. kafka-python, the client that opens sessions (notes G17), consumes
two partitions on both cores through one and reads every record exactly once. A read_committed
session at an open transaction carries none of its records; the commit wakes its long-poll,
which carries them and the moved last stable offset."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import pytest
from broker_proc import BrokerProcess, check_consumed, create_topic, expected_records, recv_exact
from confluent_kafka import Producer
from kafka import KafkaProducer
from test_kafka_python import Polled, assigned_consumer, poll_until

from redshank.protocol.api_versions import ApiKey, request_header_version, response_header_version
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.fetch import (
    FetchPartition,
    FetchRequest,
    FetchResponse,
    FetchTopic,
    ForgottenTopic,
)
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader
from redshank.protocol.records import iter_records

TIMEOUT = 20.0
VERSION = 12


class _Conn:
    """One Kafka connection sending raw Fetch requests (bounded by TIMEOUT per call)."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.corr = 0

    def fetch(self, request: FetchRequest) -> FetchResponse:
        self.corr += 1
        key = ApiKey.FETCH
        body = RequestHeader(key, VERSION, self.corr, "session-test").encode(
            request_header_version(key, VERSION)) + request.encode(VERSION)
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        frame = recv_exact(self.sock, struct.unpack(">i", recv_exact(self.sock, 4))[0])
        head, pos = ResponseHeader.decode_from(frame, 0, response_header_version(key, VERSION))
        assert head.correlation_id == self.corr
        return FetchResponse.decode(frame[pos:], VERSION)

    def close(self) -> None:
        self.sock.close()


def _request(session_id: int, epoch: int, parts: dict[int, int], topic: str,
             forget: tuple[int, ...] = (), max_wait_ms: int = 0, isolation: int = 0
             ) -> FetchRequest:
    topics = (FetchTopic(topic, partitions=tuple(
        FetchPartition(p, fetch_offset=o, partition_max_bytes=1 << 20)
        for p, o in parts.items())),) if parts else ()
    forgotten = (ForgottenTopic(topic, partitions=forget),) if forget else ()
    return FetchRequest(max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=50 << 20,
                        isolation_level=isolation, session_id=session_id,
                        session_epoch=epoch, topics=topics, forgotten_topics_data=forgotten)


def _carried(resp: FetchResponse) -> dict[int, list[bytes | None]]:
    """Partition -> the values of the records it carried."""
    return {p.partition_index: [r.value for r in iter_records(p.records)] if p.records else []
            for t in resp.responses for p in t.partitions}


def _produce(bootstrap: str, topic: str, records: list[tuple[int, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for p, value in records:
        producer.produce(topic, value=value, partition=p)
    assert producer.flush(TIMEOUT) == 0


class _Later:
    """Produce `records` after `delay` seconds, on a thread (bounded, joined by the test)."""

    def __init__(self, bootstrap: str, topic: str, records: list[tuple[int, bytes]],
                 delay: float) -> None:
        self.error: BaseException | None = None

        def run() -> None:
            time.sleep(delay)
            try:
                _produce(bootstrap, topic, records)
            except BaseException as exc:  # reported by join()
                self.error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


@pytest.mark.timeout(90)
def test_session_life_on_raw_requests(broker: BrokerProcess) -> None:
    topic = "fs-raw"
    create_topic(broker.bootstrap, topic, 2)  # partition 0 on core 0, 1 on core 1
    _produce(broker.bootstrap, topic, [(0, b"a0"), (0, b"a1"), (1, b"b0")])
    conn = _Conn(broker.bootstrap)
    try:
        full = conn.fetch(_request(0, 0, {0: 0, 1: 0}, topic))
        sid = full.session_id
        assert full.error_code == 0 and sid != 0
        assert _carried(full) == {0: [b"a0", b"a1"], 1: [b"b0"]}

        # The client moved both offsets; nothing new: an incremental answer carries nothing.
        quiet = conn.fetch(_request(sid, 1, {0: 2, 1: 1}, topic))
        assert (quiet.error_code, quiet.session_id, _carried(quiet)) == (0, sid, {})

        # Names no partition, yet reads both: the long-poll wakes on partition 1's record
        # (produced while it waits) and the answer carries partition 1 only.
        started = time.monotonic()
        later = _Later(broker.bootstrap, topic, [(1, b"b1")], delay=0.3)
        woken = conn.fetch(_request(sid, 2, {}, topic, max_wait_ms=10_000))
        later.join()
        assert time.monotonic() - started < 9  # woken by the record, not the 10 s wait
        assert (woken.session_id, _carried(woken)) == (sid, {1: [b"b1"]})

        wrong = conn.fetch(_request(sid, 9, {}, topic))
        assert (wrong.error_code, wrong.responses) == (ErrorCode.INVALID_FETCH_SESSION_EPOCH, ())

        # The session survived the wrong epoch; forget partition 1, then give it a record:
        # only partition 0 is still read, and it has nothing.
        forgot = conn.fetch(_request(sid, 3, {}, topic, forget=(1,)))
        assert (forgot.error_code, _carried(forgot)) == (0, {})
        _produce(broker.bootstrap, topic, [(1, b"b2"), (0, b"a2")])
        after = conn.fetch(_request(sid, 4, {}, topic, max_wait_ms=5000))
        assert _carried(after) == {0: [b"a2"]}

        closed = conn.fetch(_request(sid, -1, {0: 3}, topic))  # close: a sessionless fetch
        assert (closed.error_code, closed.session_id, _carried(closed)) == (0, 0, {0: []})
        gone = conn.fetch(_request(sid, 5, {}, topic))
        assert gone.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    finally:
        conn.close()


@pytest.mark.timeout(60)
def test_read_committed_session_is_woken_and_told_by_a_commit(broker: BrokerProcess) -> None:
    # A read_committed fetch session (raw requests: librdkafka opens none, notes G17) at the
    # start of an open transaction: its records are past the last stable offset, so nothing is
    # carried; the commit (made while an incremental fetch long-polls) wakes the fetch, which
    # carries the records and the moved last stable offset.
    topic = "fs-read-committed"
    create_topic(broker.bootstrap, topic, 1)
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "fs-rc-txn",
                    "log_level": 0})
    txn.init_transactions(TIMEOUT)
    txn.begin_transaction()
    for i in range(3):
        txn.produce(topic, value=b"t%d" % i, partition=0)
    assert txn.flush(TIMEOUT) == 0
    conn = _Conn(broker.bootstrap)
    try:
        full = conn.fetch(_request(0, 0, {0: 0}, topic, isolation=1))
        sid = full.session_id
        [[part]] = [t.partitions for t in full.responses]
        assert (sid != 0, part.high_watermark, part.last_stable_offset) == (True, 3, 0)
        assert _carried(full) == {0: []}
        quiet = conn.fetch(_request(sid, 1, {}, topic, isolation=1))
        assert (quiet.session_id, _carried(quiet)) == (sid, {})

        started = time.monotonic()
        failed: list[BaseException] = []

        def commit_later() -> None:
            time.sleep(0.3)
            try:
                txn.commit_transaction(TIMEOUT)
            except BaseException as exc:  # reported below
                failed.append(exc)

        commit = threading.Thread(target=commit_later, daemon=True)
        commit.start()
        woken = conn.fetch(_request(sid, 2, {}, topic, max_wait_ms=10_000, isolation=1))
        commit.join(TIMEOUT)
        assert not commit.is_alive() and not failed, failed
        assert time.monotonic() - started < 9  # woken by the commit, not the 10 s wait
        assert (woken.session_id, _carried(woken)) == (sid, {0: [b"t0", b"t1", b"t2"]})
        [[part]] = [t.partitions for t in woken.responses]
        assert (part.high_watermark, part.last_stable_offset) == (4, 4)  # after the marker
    finally:
        conn.close()


@pytest.mark.timeout(90)
def test_kafka_python_consumes_through_an_incremental_session(broker: BrokerProcess) -> None:
    topic = "fs-kafka-python"
    partitions, per_partition = 2, 200
    create_topic(broker.bootstrap, topic, partitions)
    expected = expected_records(topic, partitions, per_partition)
    consumer = assigned_consumer(broker.bootstrap, topic, partitions)
    got: Polled = {}
    try:
        consumer.poll(timeout_ms=300)  # the first (full) fetch opens the session
        # Produced in two halves while the consumer fetches, so its incremental fetches carry
        # new records on both cores' partitions.
        half = per_partition // 2
        for part in (slice(0, half), slice(half, None)):
            _send(broker.bootstrap, topic, {p: r[part] for p, r in expected.items()})
            poll_until(consumer, got, sum(len(r[: part.stop]) for r in expected.values()))
        sessions = _sessions(consumer)
    finally:
        consumer.close()
    check_consumed(expected, got)
    # kafka-python's own view of its session with this broker: established by the broker
    # (a nonzero id) and continued (the epoch advanced past the first incremental fetch).
    assert sessions and all(sid != 0 and epoch > 1 for sid, epoch in sessions), sessions


def _send(bootstrap: str, topic: str, records: dict[int, list[tuple[bytes, bytes]]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    try:
        for p, batch in records.items():
            for k, v in batch:
                producer.send(topic, key=k, value=v, partition=p)
        producer.flush(TIMEOUT)
    finally:
        producer.close(10)


def _sessions(consumer: Any) -> list[tuple[int, int]]:
    """(session id, next epoch) of each of the consumer's fetch sessions (kafka-python 3.0's
    FetchSessionHandler, one per broker node)."""
    handlers = consumer._fetcher._session_handlers.values()
    return [(h.next_metadata.session_id, h.next_metadata.epoch) for h in handlers]
