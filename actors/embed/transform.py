"""Data transforms: a Python class the broker runs next to each partition of its input topic.

The public, semver-stable surface (re-exported from `redshank.actors.embed`):

    from redshank.actors.embed.transform import Transform, InputRecord, Output

    class Upper(Transform):
        def process(self, record: InputRecord) -> Iterable[Output] | None:
            yield Output(value=record.value.upper(), key=record.key)

deployed with `redshank transform deploy --name upper --input in --output out mod:Upper`.
The broker runs one instance of the class per input partition, on the core leading that
partition, feeds it the partition's committed records in order, and appends what `process`
yields to the output topic(s) through the normal produce path (acks=all). At-least-once: the
input offset is committed only once the output is durable, so after a crash some records may be
processed (and written) again.

`process` may also return or yield the `InputRecord` itself (as Redpanda's
`w.Write(e.Record())`): that record, unchanged (key, value, headers and its timestamp, the
input's), to the first output topic. One whose key, value and headers were not read is not
parsed at all: its stored bytes are copied into the output batch.

    class Keep(Transform):
        def process(self, record: InputRecord) -> Iterable[Output | InputRecord] | None:
            if record.offset % 2 == 0:
                yield record

Also here, for the broker's side: `records_of` (the lazily decoded records of fetched batches)
and `load_transform` (a deployment's class from its shipped source). Must not know: partitions,
cores, the produce path.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from redshank.protocol.batch_validator import Header, records_section, walk_headers
from redshank.protocol.errors import CorruptRecordError
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.varint import decode_varint, decode_varlong

__all__ = [
    "InputRecord",
    "Output",
    "Transform",
    "TransformContext",
    "TransformLoadError",
    "load_transform",
    "module_name",
    "records_of",
]

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class TransformContext:
    """What `Transform.setup` is told: the deployment's name, the input topic and the partition
    this instance serves, and the output topics (the first is the default of `Output.topic`)."""

    name: str
    input_topic: str
    partition: int
    output_topics: tuple[str, ...]


@dataclass(frozen=True, slots=True, init=False)
class Output:
    """A record to write. `topic` None: the first output topic; `timestamp` None: the time it is
    produced (milliseconds since the epoch otherwise). The partition is the input's partition
    number when the output topic has it, else the key's murmur2 hash (Kafka's default
    partitioner), else (no key) the input partition modulo the output's partition count."""

    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    topic: str | None = None
    timestamp: int | None = None

    def __init__(self, value: bytes | None, key: bytes | None = None,
                 headers: tuple[tuple[str, bytes | None], ...] = (), topic: str | None = None,
                 timestamp: int | None = None) -> None:
        # Frozen dataclass semantics (eq, hash, repr, FrozenInstanceError, `replace`), with
        # the slots set through their descriptors: the generated frozen __init__ goes through
        # object.__setattr__ per field, 1.3 us of a transform's per-record budget against 0.8.
        _set_value(self, value)
        _set_key(self, key)
        _set_headers(self, headers)
        _set_topic(self, topic)
        _set_timestamp(self, timestamp)


_set_value = Output.__dict__["value"].__set__
_set_key = Output.__dict__["key"].__set__
_set_headers = Output.__dict__["headers"].__set__
_set_topic = Output.__dict__["topic"].__set__
_set_timestamp = Output.__dict__["timestamp"].__set__


class InputRecord:
    """One committed record of the input partition. `offset` and `timestamp` (ms) are read
    when the record is handed over; `key`, `value` and `headers` are parsed from the fetched
    bytes only when first read. Returned or yielded by `process`: written as it is (a record
    never read, as its stored bytes: `transform_output.PendingOutput.forward`)."""

    __slots__ = ("_data", "_end", "_headers", "_key", "_pos", "_value", "offset",
                 "partition", "timestamp", "topic")

    def __init__(self, topic: str, partition: int, offset: int, timestamp: int,
                 data: Buffer, pos: int, end: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self._data: Buffer | None = data
        self._pos = pos  # the key's length varint
        self._end = end  # the record's end
        # _key, _value, _headers: set by `_parse` (unset until then: three stores per record
        # saved, read only through the accessors, which parse first).

    def _parse(self) -> None:
        data = self._data
        if data is None:
            return
        pos, end = self._pos, self._end
        self._key: bytes | None = None
        self._value: bytes | None = None
        self._headers: tuple[Header, ...] = ()
        # The lengths' one-byte forms inline (a null key, a key below 64 bytes), the rest a
        # call: per record, a call is as much as the copy of a 1 KiB value.
        raw = data[pos] if pos < end else 0x80  # past the end: the call says so
        if raw == 1:  # null
            pos += 1
        else:
            if raw < 0x80:
                size, pos = (raw >> 1) ^ -(raw & 1), pos + 1
            else:
                size, pos = decode_varint(data, pos)
            if size >= 0:
                self._key = bytes(data[pos:pos + size])
                pos += size
        raw = data[pos] if pos < end else 0x80  # past the end: the call says so
        if raw == 1:
            pos += 1
        else:
            if raw < 0x80:
                size, pos = (raw >> 1) ^ -(raw & 1), pos + 1
            elif pos + 1 < end and data[pos + 1] < 0x80:  # 64 to 8191 bytes
                raw = (raw & 0x7F) | (data[pos + 1] << 7)
                size, pos = (raw >> 1) ^ -(raw & 1), pos + 2
            else:
                size, pos = decode_varint(data, pos)
            if size >= 0:
                self._value = bytes(data[pos:pos + size])
                pos += size
        if pos < end and data[pos] != 0:
            read: list[Header] = []
            walk_headers(data, pos, end, read)
            self._headers = tuple(read)
        self._data = None  # parsed: the batch's buffer is no longer held by this record

    # Each accessor parses on the first read only (the check inline: a transform reads two or
    # three fields of every record).
    @property
    def key(self) -> bytes | None:
        if self._data is not None:
            self._parse()
        return self._key

    @property
    def value(self) -> bytes | None:
        if self._data is not None:
            self._parse()
        return self._value

    @property
    def headers(self) -> tuple[tuple[str, bytes | None], ...]:
        if self._data is not None:
            self._parse()
        return self._headers

    def __repr__(self) -> str:
        return (f"InputRecord(topic={self.topic!r}, partition={self.partition}, "
                f"offset={self.offset}, timestamp={self.timestamp})")


class Transform:
    """Subclass and override `process` (and `setup` if the instance needs state). One instance
    per input partition; its methods run on the broker core leading that partition, so they
    must not block for long (the core serves other partitions meanwhile). An exception from
    `process` makes the broker retry the whole chunk of records with backoff (the instance shows
    `failing` in `redshank transform list`); it never stops the core."""

    def setup(self, ctx: TransformContext) -> None:
        """Called once, before the first `process`, on the core the instance runs on."""

    def process(self, record: InputRecord
                ) -> Iterable[Output | InputRecord] | Output | InputRecord | None:
        """The records to write for `record` (None or empty: none); an `InputRecord` among
        them (`record` itself, typically): that record forwarded as it came, its timestamp
        kept."""
        raise NotImplementedError


def records_of(topic: str, partition: int, data: Buffer, start: int = 0,
               aborted: Sequence[tuple[int, int]] = ()) -> Iterator[InputRecord]:
    """The data records of the whole batches in `data` at offsets >= `start` (control batches
    skipped), decoded lazily: the batch is decompressed and each record's offset and timestamp
    read as it is reached; key, value and headers when the transform reads them.

    `aborted`: read_committed's (producer id, first offset) of the aborted transactions the
    batches overlap (FetchResponse's aborted_transactions, KIP-98): their records are skipped,
    as Kafka's consumer does (a producer's batches are aborted from its transaction's first
    offset until its next control batch, the ABORT marker)."""
    pending = sorted(aborted, key=lambda a: a[1])
    active: set[int] = set()  # producers inside an aborted transaction here
    for pos, header in iter_batches(data, verify_crc=False):
        while pending and pending[0][1] <= header.last_offset:
            active.add(pending.pop(0)[0])
        if header.is_control:
            active.discard(header.producer_id)  # its marker ends the transaction
            continue
        if header.last_offset < start or (header.is_transactional
                                           and header.producer_id in active):
            continue
        section, rpos, end = records_section(data, pos, header)
        log_append = header.max_timestamp if header.timestamp_type == 1 else None
        base_offset, base_ts = header.base_offset, header.base_timestamp
        for _ in range(header.record_count):
            raw = section[rpos] if rpos < end else 0x80  # (past the end: the call says so)
            if raw < 0x80:
                length, rpos = (raw >> 1) ^ -(raw & 1), rpos + 1
            elif rpos + 1 < end and section[rpos + 1] < 0x80:  # 64 to 8191 bytes
                raw = (raw & 0x7F) | (section[rpos + 1] << 7)
                length, rpos = (raw >> 1) ^ -(raw & 1), rpos + 2
            else:
                length, rpos = decode_varint(section, rpos)
            record_end = rpos + length
            if length <= 0 or record_end > end:
                raise CorruptRecordError(f"record length {length} invalid at {rpos}")
            # The two varints after the attributes byte, one-byte forms inline (a call each
            # is a tenth of the record's cost here).
            p = rpos + 1
            raw = section[p] if p < record_end else 0x80
            if raw < 0x80:
                ts_delta, p = (raw >> 1) ^ -(raw & 1), p + 1
            else:
                ts_delta, p = decode_varlong(section, p)
            raw = section[p] if p < record_end else 0x80
            if raw < 0x80:
                offset_delta, p = (raw >> 1) ^ -(raw & 1), p + 1
            elif p + 1 < record_end and section[p + 1] < 0x80:  # 64 to 8191: most of a batch
                raw = (raw & 0x7F) | (section[p + 1] << 7)
                offset_delta, p = (raw >> 1) ^ -(raw & 1), p + 2
            else:
                offset_delta, p = decode_varint(section, p)
            offset = base_offset + offset_delta
            if offset >= start:
                ts = base_ts + ts_delta if log_append is None else log_append
                yield InputRecord(topic, partition, offset, ts, section, p, record_end)
            rpos = record_end


class TransformLoadError(Exception):
    """A deployment's source does not compile or import, or does not define the class as a
    `Transform` subclass."""


def module_name(deployment: str) -> str:
    """The module name a deployment's source is loaded under (one per deployment, so two
    deployments of files with the same name do not collide)."""
    safe = "".join(c if c.isalnum() else "_" for c in deployment)
    return f"redshank_transform_{safe}"


def load_transform(deployment: str, source: str, filename: str, class_name: str
                   ) -> type[Transform]:
    """Compile and execute `source` as module `module_name(deployment)` and return its class
    `class_name`; TransformLoadError (with the cause) if that fails."""
    name = module_name(deployment)
    module = types.ModuleType(name)
    module.__file__ = filename
    try:
        code = compile(source, filename, "exec")
        sys.modules[name] = module  # dataclasses and pickling look classes up by module
        exec(code, module.__dict__)
    except BaseException as exc:
        sys.modules.pop(name, None)
        raise TransformLoadError(f"{filename}: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, class_name, None)
    # A subclass of Transform, or any class with a `process` (duck-typed).
    if not (isinstance(cls, type) and callable(getattr(cls, "process", None))):
        raise TransformLoadError(f"{filename} defines no Transform class {class_name!r}")
    return cls

