"""The struct codecs of the messages that carry record batches between cores.

Concern: `Append`, `Read`, `ReadResult`, `PartitionResult` (cluster/partition/api.py) and the
watermark push `HighWatermark` (watermarks.py) as envelope codecs, so a batch crosses a ring as the
frame's raw tail instead of a pickle (design review section 2.1). Must not know: actors, Kafka
requests, logs.

    Append           <q acks> <B producer: 0 none, 1 idempotent, 2 transactional> <q id>
                     <q epoch> <q first seq> <q last seq> | records
    Read             <q offset> <q max bytes> <q leader epoch> <B copy> <B has sub> <q subscriber>
                     <B isolation>
    ReadResult       <q error> <q high watermark> <q log start> <B has records> <q LSO>
                     <I aborted count> [<q producer id> <q first offset>]... | records
    PartitionResult  <q error> <q base offset> <q log start> <B has message> message (utf-8)
    HighWatermark    <q partition> <q high watermark> <H topic length> <B push> topic (utf-8)
                     [<16s topic id> <q base offset> <q high watermark> <q log start> | records]
                     (push: 0 none, 1 a push, 3 a stable push: read_committed may take it)

`| records` is the tail: the sender's buffer (the request frame's view, the log cache's view) is
written into the ring as is, the one copy on the way out, and the receiver decodes it as a
read-only view into the ring. The view is valid while the frame is: an ask handled inline sees it
(`PartitionLeader._append` copies it into the buffer the log keeps, the one copy out of the
ring); everything else gets the message `detach`ed first (records copied out as bytes, or as a
bytearray for `Append`, the writable buffer the log can keep). A push is a tell, always queued
for the watch and kept on its board: its batches are copied out as they are decoded. Integers
are packed as int64 (the Kafka fields are narrower); a value that does not fit goes by pickle
(envelope.register_codec).

Registered at import. `redshank.actors` imports this module, so every core process that hosts
an actor of this package (the forkserver child imports the setup's module, hence the package)
has the same codecs on both ends of its rings. Ids 32-36; tests and benches use others.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid
from typing import Final

from redshank.actors.runtime import register_codec
from redshank.actors.watermarks import HighWatermark, Pushed
from redshank.cluster.partition.api import (
    Append,
    PartitionResult,
    ProducerBatch,
    Read,
    ReadResult,
)

__all__ = [
    "APPEND_ID",
    "HIGH_WATERMARK_ID",
    "PARTITION_RESULT_ID",
    "READ_ID",
    "READ_RESULT_ID",
    "decode_append",
    "decode_high_watermark",
    "decode_partition_result",
    "decode_read",
    "decode_read_result",
    "detach_append",
    "detach_read_result",
    "encode_append",
    "encode_high_watermark",
    "encode_partition_result",
    "encode_read",
    "encode_read_result",
]

APPEND_ID: Final = 32
READ_ID: Final = 33
READ_RESULT_ID: Final = 34
PARTITION_RESULT_ID: Final = 35
HIGH_WATERMARK_ID: Final = 36

Buffer = bytes | bytearray | memoryview

_APPEND: Final = struct.Struct("<qBqqqq")
_READ: Final = struct.Struct("<qqqBBqB")
_READ_RESULT: Final = struct.Struct("<qqqBqI")
_ABORTED: Final = struct.Struct("<qq")
_PARTITION_RESULT: Final = struct.Struct("<qqqB")
_HW: Final = struct.Struct("<qqHB")
_PUSHED: Final = struct.Struct("<16sqqq")
_NO_PRODUCER: Final = (0, 0, 0, 0)


# ---- Append ---------------------------------------------------------------------------------

def encode_append(m: Append) -> tuple[bytes, Buffer]:
    p = m.producer
    if p is None:
        return _APPEND.pack(m.acks, 0, *_NO_PRODUCER), m.records
    return _APPEND.pack(m.acks, 2 if p.transactional else 1, p.producer_id, p.producer_epoch,
                        p.first_sequence, p.last_sequence), m.records


def decode_append(v: memoryview) -> Append:
    acks, has_producer, pid, epoch, first, last = _APPEND.unpack_from(v)
    producer = ProducerBatch(pid, epoch, first, last, has_producer == 2) if has_producer else None
    return Append(v[_APPEND.size:].toreadonly(), acks, producer)


def detach_append(m: Append) -> Append:
    """The records as a bytearray of their own: the writable buffer the owner's log can keep."""
    return Append(bytearray(m.records), m.acks, m.producer)


# ---- Read -----------------------------------------------------------------------------------

def encode_read(m: Read) -> bytes:
    sub = m.subscriber
    return _READ.pack(m.offset, m.max_bytes, m.leader_epoch, m.copy, sub is not None,
                      0 if sub is None else sub, m.isolation)


def decode_read(v: memoryview) -> Read:
    offset, max_bytes, leader_epoch, copy, has_sub, sub, isolation = _READ.unpack_from(v)
    return Read(offset, max_bytes, leader_epoch, bool(copy), sub if has_sub else None,
                isolation)


# ---- ReadResult -----------------------------------------------------------------------------

def encode_read_result(m: ReadResult) -> tuple[bytes, Buffer]:
    records = m.records
    head = _READ_RESULT.pack(m.error_code, m.high_watermark, m.log_start_offset,
                             records is not None, m.last_stable_offset, len(m.aborted))
    if m.aborted:
        head += b"".join(_ABORTED.pack(pid, first) for pid, first in m.aborted)
    return head, b"" if records is None else records


def decode_read_result(v: memoryview) -> ReadResult:
    error_code, hw, log_start, has_records, lso, n = _READ_RESULT.unpack_from(v)
    at = _READ_RESULT.size
    aborted = tuple(_ABORTED.unpack_from(v, at + i * _ABORTED.size) for i in range(n))
    at += n * _ABORTED.size
    records = v[at:].toreadonly() if has_records else None
    return ReadResult(error_code, hw, log_start, records, lso, aborted)


def detach_read_result(m: ReadResult) -> ReadResult:
    if type(m.records) is not memoryview:
        return m
    return dataclasses.replace(m, records=bytes(m.records))


# ---- PartitionResult ------------------------------------------------------------------------

def encode_partition_result(m: PartitionResult) -> bytes:
    text = m.error_message
    head = _PARTITION_RESULT.pack(m.error_code, m.base_offset, m.log_start_offset,
                                  text is not None)
    return head if text is None else head + text.encode()


def decode_partition_result(v: memoryview) -> PartitionResult:
    error_code, base, log_start, has_text = _PARTITION_RESULT.unpack_from(v)
    text = str(v[_PARTITION_RESULT.size:], "utf-8") if has_text else None
    return PartitionResult(error_code, base, log_start, text)


# ---- HighWatermark (and its push) -----------------------------------------------------------

def encode_high_watermark(m: HighWatermark) -> bytes | tuple[bytes, Buffer]:
    topic = m.topic.encode()
    p = m.pushed
    push = 0 if p is None else 3 if p.stable else 1
    head = _HW.pack(m.partition, m.high_watermark, len(topic), push) + topic
    if p is None:
        return head
    return head + _PUSHED.pack(p.topic_id.bytes, p.base_offset, p.high_watermark,
                               p.log_start_offset), p.records


def decode_high_watermark(v: memoryview) -> HighWatermark:
    partition, hw, topic_len, has_push = _HW.unpack_from(v)
    at = _HW.size + topic_len
    topic = str(v[_HW.size:at], "utf-8")
    if not has_push:
        return HighWatermark(topic, partition, hw)
    topic_id, base, push_hw, log_start = _PUSHED.unpack_from(v, at)
    # Copied out at once: a tell is always queued for the watch (and the board keeps the
    # batches), so a view could not outlive the frame anyway.
    records = v[at + _PUSHED.size:].tobytes()
    return HighWatermark(topic, partition, hw,
                         Pushed(uuid.UUID(bytes=topic_id), base, push_hw, log_start, records,
                                has_push == 3))


register_codec(APPEND_ID, Append, encode_append, decode_append, detach=detach_append)
register_codec(READ_ID, Read, encode_read, decode_read)
register_codec(READ_RESULT_ID, ReadResult, encode_read_result, decode_read_result,
               detach=detach_read_result)
register_codec(PARTITION_RESULT_ID, PartitionResult, encode_partition_result,
               decode_partition_result)
register_codec(HIGH_WATERMARK_ID, HighWatermark, encode_high_watermark, decode_high_watermark)
