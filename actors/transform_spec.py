"""Data transforms, the sans-IO rules: what a deployment is and how it is stored, where an
output record goes, how a failing chunk is retried, what an instance reports.

Where deployments live: the compacted topic `__transforms` (one partition), key = the
deployment's name, value = `Deployment.encode()` (JSON, the transform's source inside), a null
value deletes it. The CLI writes it with an ordinary producer (acks=all); every core's
transform manager follows it. The node's durable metadata is thus the same log machinery as any
topic (as Kafka Connect keeps its connector configs in a compacted topic).

Progress and status: each instance commits its next input offset in the consumer group
`group_of(name)` ("__transform.NAME") of `__consumer_offsets`, only once the output of the
records before it is durable (at-least-once); the commit's metadata carries the instance's
`Status` (JSON), committed again at most every `STATUS_EVERY_S` while it changes and every
`HEARTBEAT_S` while idle, so `redshank transform list` reads status, counts and lag with
ordinary Kafka requests, and `redshank group describe __transform.NAME` shows the lag.

Must not know: cores, actors, I/O.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import asdict

import crc32c as _crc32c

from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.varint import encode_varlong

__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_MIN_S",
    "HEARTBEAT_S",
    "OUTPUT_BATCH_BYTES",
    "OUTPUT_FLUSH_BYTES",
    "READ_BYTES",
    "STATUS_EVERY_S",
    "TRANSFORMS_TOPIC",
    "Deployment",
    "OutputBatch",
    "Status",
    "backoff",
    "encode_batch",
    "group_of",
    "murmur2",
    "output_partition",
]

TRANSFORMS_TOPIC = "__transforms"
# One chunk of input: the most an instance reads at once (plus one batch larger than this,
# served whole as Fetch does). With the output of the chunk, what an instance holds.
READ_BYTES = 1024 * 1024
# Pending output is produced (and awaited) once it reaches this, within a chunk.
OUTPUT_FLUSH_BYTES = 1024 * 1024
# The most bytes of one output batch: under Kafka's default max.message.bytes (1048588), so an
# output partition's batch is never refused as too large; a record that would take a batch
# past this starts the next batch of that partition.
OUTPUT_BATCH_BYTES = 1024 * 1024
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
STATUS_EVERY_S = 1.0
HEARTBEAT_S = 5.0
# The status's error text is cut to this (commit metadata is at most 4096 bytes by default).
ERROR_CHARS = 500


def group_of(name: str) -> str:
    return f"__transform.{name}"


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployed transform: `cls` of the module whose single source file `filename` holds
    `source`, fed from `input`, writing to `outputs` (the first is the default)."""

    name: str
    input: str
    outputs: tuple[str, ...]
    cls: str
    filename: str
    source: str

    def encode(self) -> bytes:
        doc = asdict(self)
        doc["outputs"] = list(self.outputs)
        doc["version"] = 1
        return json.dumps(doc).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Deployment:
        doc = json.loads(raw)
        return cls(str(doc["name"]), str(doc["input"]), tuple(str(t) for t in doc["outputs"]),
                   str(doc["cls"]), str(doc["filename"]), str(doc["source"]))


@dataclass(frozen=True, slots=True)
class Status:
    """An instance's report, carried in its offset commit's metadata. `state`: running, or
    failing (`process`, its setup or the output keeps failing: retried with backoff); a reader
    shows an instance whose last report is older than a few HEARTBEAT_S as stopped (its
    deployment deleted, its core or broker gone). `at`: ms since the epoch of the report;
    `processed`/`failed`: counts since the deployment's first instance (carried over
    restarts); `error`: the last one, also after a recovery."""

    state: str
    processed: int
    failed: int
    error: str | None
    at: int
    core: int = -1
    node: int = -1  # the broker's node id (cluster mode: the input partition's leader)

    def encode(self) -> str:
        doc = asdict(self)
        if self.error is not None:
            doc["error"] = self.error[:ERROR_CHARS]
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | None) -> Status | None:
        if not raw:
            return None
        try:
            doc = json.loads(raw)
            return cls(str(doc["state"]), int(doc["processed"]), int(doc["failed"]),
                       doc.get("error"), int(doc["at"]), int(doc.get("core", -1)),
                       int(doc.get("node", -1)))
        except (ValueError, KeyError, TypeError):
            return None


def backoff(attempt: int) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): 0.1 s doubling, capped at 5 s."""
    return float(min(BACKOFF_MIN_S * (2 ** max(attempt - 1, 0)), BACKOFF_MAX_S))


def output_partition(input_partition: int, key: bytes | None, partitions: int) -> int:
    """The output partition of a record: the input's partition number when the output topic has
    it (a 1:1 mapping keeps each input partition's order), else by the key's murmur2 hash like
    Kafka's default partitioner, else (no key) the input partition modulo the count."""
    if input_partition < partitions:
        return input_partition
    if key is not None:
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    return input_partition % partitions


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2` (signed 32-bit result), the default partitioner's hash."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[i * 4:i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length & 3
    tail = n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


# -- the output's record batch -----------------------------------------------------------------
# What `protocol.records.BatchBuilder` builds (a test checks the bytes are the same), without
# its per-record generality: an identity transform spent half its time there.
_HEADER = struct.Struct(">qiibIhiqqqhii")
_HEADER_SIZE = 61
_CRC_POS = 17
_CRC_START = 21
_NO_HEADER = bytes(_HEADER_SIZE)
_SMALL_N = 1 << 14
_SMALL = [encode_varlong(v >> 1 if not v & 1 else -((v + 1) >> 1)) for v in range(1 << 14)]

OutputRecord = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]], int]


def _uvar(raw: int) -> bytes:
    """The varint bytes of an already zigzagged value."""
    if raw < 16384:
        return _SMALL[raw]
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _len(data: bytes | None) -> bytes:
    return b"\x01" if data is None else _uvar(len(data) << 1)


class OutputBatch:
    """One output partition's batch, built as records come: each record is encoded when it is
    added (its parts appended to the batch's, no per-record join), the header and CRC when the
    batch is taken. Offset deltas 0..n-1; timestamps relative to the first record's."""

    __slots__ = ("_base_ts", "_max_ts", "_parts", "count", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = [_NO_HEADER]
        self._base_ts = 0
        self._max_ts = 0
        self.count = 0
        self.size = _HEADER_SIZE  # bytes of the batch so far

    def add(self, key: bytes | None, value: bytes | None,
            headers: Sequence[tuple[str, bytes | None]], ts: int) -> int:
        """Append one record; -> its size in bytes."""
        # Per record, each call and len() shows: the varints inline for the small values,
        # their sizes known from the value (one byte below 64, after zigzag below 128).
        small = _SMALL
        count = self.count
        if count:
            if ts > self._max_ts:
                self._max_ts = ts
            d = ts - self._base_ts
        else:
            self._base_ts = self._max_ts = ts
            d = 0
        # `size`: the record's bytes after its length prefix (attributes, the deltas, key,
        # value, the headers' count), counted as they are chosen.
        if 0 <= d < 64:
            ts_delta = small[d << 1]
            size = 3
        else:
            raw = d << 1 if d >= 0 else ((-d) << 1) - 1
            ts_delta = small[raw] if raw < _SMALL_N else _uvar(raw)
            size = 2 + len(ts_delta)
        if count < 64:
            offset_delta = small[count << 1]
            size += 1
        else:
            raw = count << 1
            offset_delta = small[raw] if raw < _SMALL_N else _uvar(raw)
            size += len(offset_delta)
        if key is None:
            key_len, key = b"\x01", b""
            size += 1
        else:
            n = len(key)
            raw = n << 1
            key_len = small[raw] if raw < _SMALL_N else _uvar(raw)
            size += n + (1 if raw < 128 else len(key_len))
        if value is None:
            value_len, value = b"\x01", b""
            size += 1
        else:
            n = len(value)
            raw = n << 1
            value_len = small[raw] if raw < _SMALL_N else _uvar(raw)
            size += n + (1 if raw < 128 else 2 if raw < _SMALL_N else len(value_len))
        parts = self._parts
        if headers:
            tail: list[bytes] = [_uvar(len(headers) << 1)]
            for hkey, hvalue in headers:
                name = hkey.encode()
                tail += (_uvar(len(name) << 1), name, _len(hvalue),
                         b"" if hvalue is None else hvalue)
            for part in tail:
                size += len(part)
            size -= 1  # the count is in `tail`
            raw = size << 1
            prefix = small[raw] if raw < _SMALL_N else _uvar(raw)
            parts += (prefix, b"\x00", ts_delta, offset_delta, key_len, key, value_len, value)
            parts += tail
        else:
            raw = size << 1
            prefix = small[raw] if raw < _SMALL_N else _uvar(raw)
            parts += (prefix, b"\x00", ts_delta, offset_delta, key_len, key, value_len, value,
                      b"\x00")
        self.count = count + 1
        size += 1 if raw < 128 else len(prefix)
        self.size += size
        return size

    def add_raw(self, tail: bytes, ts: int) -> int:
        """Append one record whose key, value and headers are `tail`, already encoded as a
        record stores them (the bytes from the key's length varint to the record's end: a
        forwarded input record's, copied as they are); -> its size in bytes. Its length
        prefix, attributes, timestamp delta and offset delta are this batch's."""
        # The deltas as `add` chooses them, inlined again rather than shared: a call per
        # record is a tenth of the forwarding path's time.
        small = _SMALL
        count = self.count
        if count:
            if ts > self._max_ts:
                self._max_ts = ts
            d = ts - self._base_ts
        else:
            self._base_ts = self._max_ts = ts
            d = 0
        # `size`: the record's bytes after its length prefix (attributes, the deltas, tail).
        if 0 <= d < 64:
            ts_delta = small[d << 1]
            size = 3 + len(tail)
        else:
            raw = d << 1 if d >= 0 else ((-d) << 1) - 1
            ts_delta = small[raw] if raw < _SMALL_N else _uvar(raw)
            size = 2 + len(ts_delta) + len(tail)
        if count < 64:
            offset_delta = small[count << 1]
        else:
            raw = count << 1
            offset_delta = small[raw] if raw < _SMALL_N else _uvar(raw)
            size += len(offset_delta) - 1
        raw = size << 1
        if raw < _SMALL_N:  # below 8192 bytes: a 1 KiB record's
            prefix = small[raw]
            size += 1 if raw < 128 else 2
        else:
            prefix = _uvar(raw)
            size += len(prefix)
        self._parts += (prefix, b"\x00", ts_delta, offset_delta, tail)
        self.count = count + 1
        self.size += size
        return size

    def encode(self, producer_id: int = -1, producer_epoch: int = -1,
               base_sequence: int = -1) -> memoryview:
        """The batch (base offset 0, uncompressed, magic 2), CRC32C set; with a producer id,
        an idempotent producer's batch (KIP-98: its records numbered from `base_sequence`),
        else none (-1); a read-only view of the bytes. One join of the header's place and
        the records, the header and CRC written into it: a second 1 MiB copy (header + body)
        and the transient second buffer cost 0.15-0.6 us per record (the 1 MiB allocations'
        page faults included)."""
        out = bytearray().join(self._parts)  # parts[0]: the header's place
        _HEADER.pack_into(out, 0, 0, len(out) - 12, -1, 2, 0, 0, self.count - 1,
                          self._base_ts, self._max_ts, producer_id, producer_epoch,
                          base_sequence, self.count)
        with memoryview(out) as view:
            struct.pack_into(">I", out, _CRC_POS, _crc32c.crc32c(view[_CRC_START:]))
        return memoryview(out).toreadonly()


def encode_batch(records: Sequence[OutputRecord]) -> bytes:
    """One uncompressed magic-2 batch (base offset 0, no producer) of (key, value, headers,
    timestamp ms) records, at offset deltas 0..n-1."""
    batch = OutputBatch()
    for key, value, headers, ts in records:
        batch.add(key, value, headers, ts)
    return bytes(batch.encode())
