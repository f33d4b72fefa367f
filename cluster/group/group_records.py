"""The `__consumer_offsets` record encoding: keys and values of offsets and group metadata.

Byte layouts follow Kafka's (GroupMetadataManager's schemas; all big-endian, strings int16 length,
bytes int32 length, -1 = null), so Kafka tooling can read our log and the layout of a key decides
what compaction and replay keep: the latest record per key wins, a `None` value is a tombstone.

    key   = version int16 | group string [| topic string | partition int32]
            version 0/1: an offset key (group, topic, partition); version 2: a group key (group)
    offset value v1 = 1 | offset int64 | metadata string | commit_ts int64 | expire_ts int64
    offset value v3 = 3 | offset int64 | leader_epoch int32 | metadata string | commit_ts int64
    group value  v3 = 3 | protocol_type string | generation int32 | protocol nullable string
                      | leader nullable string | current_state_ts int64
                      | members [member_id string | instance_id nullable string | client_id string
                                 | client_host string | rebalance_timeout int32
                                 | session_timeout int32 | subscription bytes | assignment bytes]

We write offset v3 (v1 only when an explicit retention asks for an expire timestamp, as Kafka)
and group v3; we read offset v0-v3 and group v0-v3. Anything else is a `GroupRecordError`.

Must not know: where records are stored, the coordinator's in-memory state.
"""

from __future__ import annotations

import struct

from redshank.cluster.group.api import NO_LEADER_EPOCH, GroupRecord
from redshank.protocol.errors import DecodeError
from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "GroupKey",
    "GroupRecordError",
    "GroupValue",
    "MemberValue",
    "OffsetKey",
    "OffsetValue",
    "decode_group_value",
    "decode_key",
    "decode_offset_value",
    "encode_group_value",
    "encode_key",
    "encode_offset_value",
    "group_record",
    "offset_record",
]

_OFFSET_KEY_VERSION = 1
_GROUP_KEY_VERSION = 2
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class GroupRecordError(DecodeError):
    """A `__consumer_offsets` key or value is truncated, too long, or of an unknown version."""


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int | None = None  # only from an explicit v2-4 retention_time_ms


@dataclass(frozen=True, slots=True)
class MemberValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes  # the member's metadata for the selected protocol
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupValue:
    protocol_type: str
    generation_id: int
    protocol_name: str | None
    leader_id: str | None
    state_timestamp_ms: int  # -1 = unknown (values older than v2)
    members: tuple[MemberValue, ...]


# ---------------------------------------------------------------------------------------------
# Writing.


class _Writer:
    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def i16(self, v: int) -> None:
        self._parts.append(_I16.pack(v))

    def i32(self, v: int) -> None:
        self._parts.append(_I32.pack(v))

    def i64(self, v: int) -> None:
        self._parts.append(_I64.pack(v))

    def string(self, v: str | None) -> None:
        if v is None:
            self.i16(-1)
            return
        raw = v.encode()
        if len(raw) > 0x7FFF:
            raise ValueError(f"string of {len(raw)} bytes does not fit an int16 length")
        self.i16(len(raw))
        self._parts.append(raw)

    def blob(self, v: bytes) -> None:
        self.i32(len(v))
        self._parts.append(v)

    def done(self) -> bytes:
        return b"".join(self._parts)


def encode_key(key: OffsetKey | GroupKey) -> bytes:
    w = _Writer()
    if isinstance(key, OffsetKey):
        w.i16(_OFFSET_KEY_VERSION)
        w.string(key.group_id)
        w.string(key.topic)
        w.i32(key.partition)
    else:
        w.i16(_GROUP_KEY_VERSION)
        w.string(key.group_id)
    return w.done()


def encode_offset_value(v: OffsetValue) -> bytes:
    w = _Writer()
    if v.expire_timestamp_ms is not None:
        w.i16(1)
        w.i64(v.offset)
        w.string(v.metadata)
        w.i64(v.commit_timestamp_ms)
        w.i64(v.expire_timestamp_ms)
    else:
        w.i16(3)
        w.i64(v.offset)
        w.i32(v.leader_epoch)
        w.string(v.metadata)
        w.i64(v.commit_timestamp_ms)
    return w.done()


def encode_group_value(v: GroupValue) -> bytes:
    w = _Writer()
    w.i16(3)
    w.string(v.protocol_type)
    w.i32(v.generation_id)
    w.string(v.protocol_name)
    w.string(v.leader_id)
    w.i64(v.state_timestamp_ms)
    w.i32(len(v.members))
    for m in v.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.i32(m.rebalance_timeout_ms)
        w.i32(m.session_timeout_ms)
        w.blob(m.subscription)
        w.blob(m.assignment)
    return w.done()


def offset_record(key: OffsetKey, value: OffsetValue | None) -> GroupRecord:
    return GroupRecord(encode_key(key), None if value is None else encode_offset_value(value))


def group_record(group_id: str, value: GroupValue | None) -> GroupRecord:
    key = encode_key(GroupKey(group_id))
    return GroupRecord(key, None if value is None else encode_group_value(value))


# ---------------------------------------------------------------------------------------------
# Reading. Every failure is a GroupRecordError: replaying a damaged log must not crash the core.


class _Reader:
    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: bytes) -> None:
        self._buf = buf
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._buf):
            raise GroupRecordError(f"truncated record at byte {self._pos} (wanted {n})")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def i16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def nullable_string(self) -> str | None:
        n = self.i16()
        if n == -1:
            return None
        try:
            return self._take(n).decode()
        except UnicodeDecodeError as e:
            raise GroupRecordError(f"string is not UTF-8: {e}") from e

    def string(self) -> str:
        s = self.nullable_string()
        if s is None:
            raise GroupRecordError("null in a non-nullable string")
        return s

    def blob(self) -> bytes:
        n = self.i32()
        return b"" if n == -1 else self._take(n)

    def end(self) -> None:
        if self._pos != len(self._buf):
            raise GroupRecordError(f"{len(self._buf) - self._pos} trailing bytes")


def decode_key(raw: bytes) -> OffsetKey | GroupKey:
    r = _Reader(raw)
    version = r.i16()
    if version in (0, 1):
        key: OffsetKey | GroupKey = OffsetKey(r.string(), r.string(), r.i32())
    elif version == 2:
        key = GroupKey(r.string())
    else:
        raise GroupRecordError(f"unknown key version {version}")
    r.end()
    return key


def decode_offset_value(raw: bytes) -> OffsetValue:
    r = _Reader(raw)
    version = r.i16()
    if version not in (0, 1, 2, 3):
        raise GroupRecordError(f"unknown offset value version {version}")
    offset = r.i64()
    epoch = r.i32() if version >= 3 else NO_LEADER_EPOCH
    metadata = r.string()
    commit_ts = r.i64()
    expire_ts = r.i64() if version == 1 else None
    r.end()
    return OffsetValue(offset, epoch, metadata, commit_ts, expire_ts)


def decode_group_value(raw: bytes) -> GroupValue:
    r = _Reader(raw)
    version = r.i16()
    if version not in (0, 1, 2, 3):
        raise GroupRecordError(f"unknown group value version {version}")
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_ts = r.i64() if version >= 2 else -1
    count = r.i32()
    if count < 0:
        raise GroupRecordError(f"negative member count {count}")
    members = []
    for _ in range(count):
        member_id = r.string()
        instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        # v0 had one timeout for both, as JoinGroup v0 did.
        rebalance_timeout = r.i32() if version >= 1 else None
        session_timeout = r.i32()
        members.append(
            MemberValue(
                member_id,
                instance_id,
                client_id,
                client_host,
                session_timeout if rebalance_timeout is None else rebalance_timeout,
                session_timeout,
                r.blob(),
                r.blob(),
            )
        )
    r.end()
    return GroupValue(protocol_type, generation, protocol, leader, state_ts, tuple(members))
