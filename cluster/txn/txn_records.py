"""The `__transaction_state` record encoding: one key and one value per transactional id.

Byte layouts follow Kafka's TransactionLogKey/TransactionLogValue schemas (transaction-coordinator
module; big-endian; strings int16 length; arrays int32 count, -1 = null), so Kafka tooling can read
our log, and the key decides what compaction and replay keep: the latest record per key wins, a
`None` value is a tombstone (an expired transactional id).

    key      = version int16 (0) | transactional_id string
    value v0 = 0 | producer_id int64 | producer_epoch int16 | timeout_ms int32 | state int8
               | partitions nullable [topic string | partition_ids [int32]]
               | last_update_ms int64 | start_ms int64
    value v1 = the same fields, flexible (compact strings and arrays, tagged fields): tag 0
               previous producer id int64, tag 1 next producer id int64, tag 2 client
               transaction version int16 (KIP-890; defaults -1, -1, 0)

We write value v0, as Kafka 3.9 does while `transaction.version` is 0 (partitions null when the
state is Empty), and read v0 and v1. Tolerance matches Kafka's loader: a key of an unknown version
is skipped (`decode_key` returns None: "a left-over from an aborted upgrade"); a value of an
unknown version, an unknown state id, truncated or trailing bytes raise `TxnRecordError` (the host
treats the log as corrupt).

Must not know: where records are stored, the coordinator's in-memory state.
"""

from __future__ import annotations

import struct

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.cluster.txn.api import NO_PRODUCER_ID, TxnRecord, TxnState
from redshank.protocol.errors import DecodeError
from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "STATE_IDS",
    "TxnRecordError",
    "TxnValue",
    "decode_key",
    "decode_value",
    "encode_key",
    "encode_value",
    "txn_record",
]

_KEY_VERSION = 0
_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

# Kafka's TransactionState ids (TransactionMetadata.scala), the `state` byte of a value.
STATE_IDS: dict[TxnState, int] = {
    TxnState.EMPTY: 0,
    TxnState.ONGOING: 1,
    TxnState.PREPARE_COMMIT: 2,
    TxnState.PREPARE_ABORT: 3,
    TxnState.COMPLETE_COMMIT: 4,
    TxnState.COMPLETE_ABORT: 5,
    TxnState.DEAD: 6,
    TxnState.PREPARE_EPOCH_FENCE: 7,
}
_STATES = {v: k for k, v in STATE_IDS.items()}


class TxnRecordError(DecodeError):
    """A `__transaction_state` key or value is truncated, too long, or of an unknown version."""


@dataclass(frozen=True, slots=True)
class TxnValue:
    """One transactional id's persisted metadata (TransactionLogValue)."""

    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: tuple[TopicPartition, ...]  # () when Empty (written as null)
    last_update_ms: int
    start_ms: int
    # v1 tagged fields (KIP-890); v0 carries none of them.
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    client_transaction_version: int = 0


# ---------------------------------------------------------------------------------------------
# Writing.


def _string(v: str) -> bytes:
    raw = v.encode()
    if len(raw) > 0x7FFF:
        raise ValueError(f"string of {len(raw)} bytes does not fit an int16 length")
    return _I16.pack(len(raw)) + raw


def encode_key(transactional_id: str) -> bytes:
    return _I16.pack(_KEY_VERSION) + _string(transactional_id)


def encode_value(v: TxnValue) -> bytes:
    """Value v0. Kafka refuses to write an Empty state with partitions; so do we."""
    if v.state is TxnState.EMPTY and v.partitions:
        raise ValueError(f"an Empty transaction has no partitions, got {v.partitions}")
    parts = [
        _I16.pack(0), _I64.pack(v.producer_id), _I16.pack(v.producer_epoch),
        _I32.pack(v.timeout_ms), _I8.pack(STATE_IDS[v.state]),
    ]
    if v.state is TxnState.EMPTY:
        parts.append(_I32.pack(-1))
    else:
        by_topic: dict[str, list[int]] = {}
        for tp in v.partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        parts.append(_I32.pack(len(by_topic)))
        for topic, ids in by_topic.items():
            parts.append(_string(topic))
            parts.append(_I32.pack(len(ids)))
            parts.extend(_I32.pack(i) for i in ids)
    parts.append(_I64.pack(v.last_update_ms))
    parts.append(_I64.pack(v.start_ms))
    return b"".join(parts)


def txn_record(transactional_id: str, value: TxnValue | None) -> TxnRecord:
    return TxnRecord(encode_key(transactional_id), None if value is None else encode_value(value))


# ---------------------------------------------------------------------------------------------
# Reading. Every failure is a TxnRecordError.


class _Reader:
    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: bytes) -> None:
        self._buf = buf
        self._pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._buf):
            raise TxnRecordError(f"truncated record at byte {self._pos} (wanted {n})")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def i8(self) -> int:
        return int(_I8.unpack(self.take(1))[0])

    def i16(self) -> int:
        return int(_I16.unpack(self.take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self.take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self.take(8))[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            if shift > 28:
                raise TxnRecordError(f"unsigned varint longer than 5 bytes at byte {self._pos}")
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def _text(self, n: int) -> str:
        try:
            return self.take(n).decode()
        except UnicodeDecodeError as e:
            raise TxnRecordError(f"string is not UTF-8: {e}") from e

    def string(self) -> str:
        n = self.i16()
        if n < 0:
            raise TxnRecordError("null in a non-nullable string")
        return self._text(n)

    def compact_string(self) -> str:
        n = self.uvarint() - 1
        if n < 0:
            raise TxnRecordError("null in a non-nullable compact string")
        return self._text(n)

    def count(self, *, compact: bool, nullable: bool) -> int:
        n = self.uvarint() - 1 if compact else self.i32()
        if n < -1 or (n == -1 and not nullable):
            raise TxnRecordError(f"bad array length {n}")
        if n > len(self._buf) - self._pos:  # every element takes a byte at least
            raise TxnRecordError(f"array of {n} elements in {len(self._buf) - self._pos} bytes")
        return n

    def tagged(self) -> dict[int, bytes]:
        fields: dict[int, bytes] = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            fields[tag] = self.take(self.uvarint())
        return fields

    def end(self) -> None:
        if self._pos != len(self._buf):
            raise TxnRecordError(f"{len(self._buf) - self._pos} trailing bytes")


def decode_key(raw: bytes) -> str | None:
    """The transactional id of a key; None for a key version this code does not know (Kafka's
    loader skips those)."""
    r = _Reader(raw)
    version = r.i16()
    if version != _KEY_VERSION:
        return None
    transactional_id = r.string()
    r.end()
    return transactional_id


def decode_value(raw: bytes) -> TxnValue:
    r = _Reader(raw)
    version = r.i16()
    if version not in (0, 1):
        raise TxnRecordError(f"unknown transaction log value version {version}")
    flexible = version >= 1
    producer_id = r.i64()
    epoch = r.i16()
    timeout_ms = r.i32()
    state_id = r.i8()
    state = _STATES.get(state_id)
    if state is None:
        raise TxnRecordError(f"unknown transaction state id {state_id}")
    partitions: list[TopicPartition] = []
    for _ in range(max(0, r.count(compact=flexible, nullable=True))):
        topic = r.compact_string() if flexible else r.string()
        for _ in range(r.count(compact=flexible, nullable=False)):
            partitions.append(TopicPartition(topic, r.i32()))
        if flexible:
            r.tagged()
    last_update_ms = r.i64()
    start_ms = r.i64()
    tags = r.tagged() if flexible else {}
    r.end()
    if state is TxnState.EMPTY:
        partitions = []  # Kafka ignores them in Empty
    return TxnValue(
        producer_id, epoch, timeout_ms, state, tuple(dict.fromkeys(partitions)), last_update_ms,
        start_ms, _tag(tags, 0, _I64, NO_PRODUCER_ID), _tag(tags, 1, _I64, NO_PRODUCER_ID),
        _tag(tags, 2, _I16, 0),
    )


def _tag(tags: dict[int, bytes], tag: int, fmt: struct.Struct, default: int) -> int:
    raw = tags.get(tag)
    if raw is None:
        return default
    if len(raw) != fmt.size:
        raise TxnRecordError(f"tagged field {tag} has {len(raw)} bytes, expected {fmt.size}")
    return int(fmt.unpack(raw)[0])
