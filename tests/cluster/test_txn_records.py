"""The `__transaction_state` record encoding against Kafka's TransactionLogKey/Value layout."""

from __future__ import annotations

import struct

import pytest

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.txn import (
    TxnRecordError,
    TxnState,
    TxnValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    txn_record,
)

ONGOING = TxnValue(
    producer_id=4242, producer_epoch=3, timeout_ms=60_000, state=TxnState.ONGOING,
    partitions=(TopicPartition("a", 0), TopicPartition("b", 2), TopicPartition("a", 5)),
    last_update_ms=1_700_000_000_123, start_ms=1_700_000_000_000,
)


def kafka_v0(pid: int, epoch: int, timeout: int, state_id: int,
             topics: list[tuple[str, list[int]]] | None, last: int, start: int) -> bytes:
    """TransactionLogValue v0 written field by field from the schema (not from our encoder)."""
    out = struct.pack(">hqhib", 0, pid, epoch, timeout, state_id)
    if topics is None:
        out += struct.pack(">i", -1)
    else:
        out += struct.pack(">i", len(topics))
        for topic, ids in topics:
            out += struct.pack(">h", len(topic)) + topic.encode()
            out += struct.pack(">i", len(ids)) + b"".join(struct.pack(">i", i) for i in ids)
    return out + struct.pack(">qq", last, start)


def test_key_is_version_0_and_the_transactional_id() -> None:
    assert encode_key("my-txn") == b"\x00\x00\x00\x06my-txn"
    assert decode_key(encode_key("my-txn")) == "my-txn"
    assert decode_key(encode_key("")) == ""


def test_value_v0_bytes_match_kafka_layout_grouped_by_topic() -> None:
    raw = encode_value(ONGOING)
    assert raw == kafka_v0(4242, 3, 60_000, 1, [("a", [0, 5]), ("b", [2])],
                           1_700_000_000_123, 1_700_000_000_000)
    back = decode_value(raw)
    assert set(back.partitions) == set(ONGOING.partitions)
    assert back.state is TxnState.ONGOING and back.producer_epoch == 3


def test_empty_writes_null_partitions_and_refuses_partitions() -> None:
    empty = TxnValue(7, 0, 1000, TxnState.EMPTY, (), 5, -1)
    assert encode_value(empty) == kafka_v0(7, 0, 1000, 0, None, 5, -1)
    assert decode_value(encode_value(empty)) == empty
    with pytest.raises(ValueError):
        encode_value(TxnValue(7, 0, 1000, TxnState.EMPTY, (TopicPartition("a", 0),), 5, -1))
    # Kafka ignores partitions of an Empty value when reading.
    assert decode_value(kafka_v0(7, 0, 1000, 0, [("a", [1])], 5, -1)).partitions == ()


@pytest.mark.parametrize("state", list(TxnState))
def test_every_state_round_trips(state: TxnState) -> None:
    parts = () if state is TxnState.EMPTY else (TopicPartition("t", 1),)
    v = TxnValue(1, 2, 3, state, parts, 4, 5)
    assert decode_value(encode_value(v)) == v


def test_tombstone_record() -> None:
    rec = txn_record("gone", None)
    assert rec.value is None and decode_key(rec.key) == "gone"


def _uvarint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def test_value_v1_flexible_with_tagged_fields() -> None:
    raw = struct.pack(">hqhib", 1, 99, 4, 30_000, 2)
    raw += _uvarint(2)  # compact array: one topic
    raw += _uvarint(2) + b"t" + _uvarint(3) + struct.pack(">ii", 0, 1) + _uvarint(0)
    raw += struct.pack(">qq", 10, 9)
    tags = [(0, struct.pack(">q", 98)), (1, struct.pack(">q", 100)), (2, struct.pack(">h", 2)),
            (9, b"future")]  # an unknown tag is skipped, as Kafka does
    raw += _uvarint(len(tags)) + b"".join(_uvarint(t) + _uvarint(len(d)) + d for t, d in tags)
    v = decode_value(raw)
    assert v == TxnValue(99, 4, 30_000, TxnState.PREPARE_COMMIT,
                         (TopicPartition("t", 0), TopicPartition("t", 1)), 10, 9, 98, 100, 2)


def test_unknown_key_version_is_skipped_like_kafka() -> None:
    assert decode_key(b"\x00\x01\x00\x01x") is None


@pytest.mark.parametrize("raw", [
    b"",  # no version
    b"\x00",  # half a version
    b"\x00\x00\x00\x05ab",  # truncated id
    b"\x00\x00\x00\x01ab",  # trailing bytes
    b"\x00\x00\xff\xff",  # null id
    b"\x00\x00\x00\x01\xff",  # not UTF-8
])
def test_bad_keys_raise(raw: bytes) -> None:
    with pytest.raises(TxnRecordError):
        decode_key(raw)


@pytest.mark.parametrize("raw", [
    struct.pack(">h", 2) + kafka_v0(1, 0, 1, 1, [], 0, 0)[2:],  # unknown value version
    kafka_v0(1, 0, 1, 8, [], 0, 0),  # unknown state id
    kafka_v0(1, 0, 1, 1, [("t", [0])], 0, 0)[:-1],  # truncated
    kafka_v0(1, 0, 1, 1, [("t", [0])], 0, 0) + b"\x00",  # trailing
    struct.pack(">hqhib", 0, 1, 0, 1, 1) + struct.pack(">i", 1_000_000),  # absurd count
    struct.pack(">hqhib", 0, 1, 0, 1, 1) + struct.pack(">i", -2),  # negative count
])
def test_bad_values_raise(raw: bytes) -> None:
    with pytest.raises(TxnRecordError):
        decode_value(raw)
