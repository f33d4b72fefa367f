"""Compacted topics with real clients against one broker: a record without a key is refused
with INVALID_RECORD (confluent-kafka's delivery error; kafka-python's per-record errors from the
response's record_errors), and the log cleaner (run on the retention tick, every 100 ms here)
leaves the latest record per key in closed segments, tombstones kept within
delete.retention.ms, offsets unchanged, and the cleaned log survives a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from broker_proc import BrokerProcess
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer
from kafka.errors import KafkaError as KpKafkaError

TIMEOUT = 20
# Each one-record batch gets a segment of its own, so every batch but the last is cleanable.
COMPACTED = {"cleanup.policy": "compact", "segment.bytes": "100"}

Row = tuple[int, bytes | None, bytes | None]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("compaction") / "data", cores=1,
                         extra_args=("--retention-check-ms", "100"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _create(bootstrap: str, name: str, config: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, 1, config=config)],
                                   request_timeout=TIMEOUT).values():
        fut.result(TIMEOUT)


def _produce_one_by_one(bootstrap: str, topic: str,
                        records: list[tuple[bytes | None, bytes | None]]) -> list[KafkaError]:
    """Each record in a request (and batch) of its own; the delivery errors, in order."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "retries": 0,
                         "enable.idempotence": False})
    errors: list[KafkaError] = []
    for key, value in records:
        producer.produce(topic, value=value, key=key,
                         on_delivery=lambda err, _msg: errors.append(err))
        assert producer.flush(TIMEOUT) == 0
    return errors


def _consume_all(bootstrap: str, topic: str) -> list[Row]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time()}",
                         "enable.auto.commit": False})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), TIMEOUT)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        rows: list[Row] = []
        deadline = time.monotonic() + TIMEOUT
        # The last record always stays (the active segment is never cleaned).
        while not rows or rows[-1][0] < high - 1:
            assert time.monotonic() < deadline, f"consumed only {rows} of {high}"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            rows.append((msg.offset(), msg.key(), msg.value()))
        return rows
    finally:
        consumer.close()


def test_keyless_records_are_refused_on_a_compacted_topic(node: BrokerProcess) -> None:
    _create(node.bootstrap, "keyless", COMPACTED)
    errors = _produce_one_by_one(node.bootstrap, "keyless", [(b"k", b"kept"), (None, b"x")])
    assert errors[0] is None
    assert errors[1] is not None and errors[1].code() == KafkaError.INVALID_RECORD
    # kafka-python reads the response's record_errors: the keyless record's own error, and
    # the keyed record of the same batch failed with it (nothing of the batch was stored).
    producer = KafkaProducer(bootstrap_servers=node.bootstrap, linger_ms=200, retries=0)
    try:
        keyed = producer.send("keyless", key=b"k", value=b"same batch")
        keyless = producer.send("keyless", value=b"no key")
        producer.flush(TIMEOUT)
    finally:
        producer.close(TIMEOUT)
    with pytest.raises(KpKafkaError) as refused:
        keyless.get(TIMEOUT)
    assert "Compacted topic cannot accept message without key in topic partition keyless-0" \
        in str(refused.value)
    with pytest.raises(KpKafkaError, match="part of a batch"):
        keyed.get(TIMEOUT)
    assert _consume_all(node.bootstrap, "keyless") == [(0, b"k", b"kept")]


def test_compaction_keeps_the_latest_value_per_key_across_a_restart(node: BrokerProcess) -> None:
    _create(node.bootstrap, "table", COMPACTED)
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"k{k}".encode(), f"r{r}".encode()) for r in range(4) for k in range(5)]
    records.append((b"k0", None))  # offset 20: the tombstone of k0 (kept: within a day)
    records.append((b"k1", b"last"))  # offset 21: in the active segment, never cleaned
    assert _produce_one_by_one(node.bootstrap, "table", records) == [None] * len(records)
    # k1's r3 (16) stays: the active segment's records are not in the cleaner's key map.
    expected: list[Row] = [(16, b"k1", b"r3"), (17, b"k2", b"r3"), (18, b"k3", b"r3"),
                           (19, b"k4", b"r3"), (20, b"k0", None), (21, b"k1", b"last")]
    deadline = time.monotonic() + TIMEOUT
    rows = _consume_all(node.bootstrap, "table")
    while rows != expected:
        assert time.monotonic() < deadline, f"not compacted: {rows}"
        time.sleep(0.2)
        rows = _consume_all(node.bootstrap, "table")
    node.stop()
    node.start()
    assert _consume_all(node.bootstrap, "table") == expected
