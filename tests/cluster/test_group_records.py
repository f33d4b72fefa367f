"""`__consumer_offsets` record encoding (Kafka's layouts), its replay, and Kafka's group ->
partition mapping."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redshank.cluster.group import GroupRecord, GroupRecordError, GroupStm, partition_for
from redshank.cluster.group.group_records import (
    GroupKey,
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_value,
    encode_key,
    encode_offset_value,
    group_record,
    offset_record,
)
from redshank.protocol import DecodeError


@pytest.mark.parametrize(
    ("group_id", "java_hash_partition"),
    [
        ("hello", 99162322 % 50),  # "hello".hashCode() == 99162322
        ("Hello World", 862545276 % 50),  # hashCode() == -862545276: abs
        ("polygenelubricants", 0),  # hashCode() == Integer.MIN_VALUE: Utils.abs gives 0
        ("", 0),
        ("\U0001F600", (0xD83D * 31 + 0xDE00) % 50),  # hashed as two UTF-16 surrogates
    ],
)
def test_partition_for_matches_kafkas_layout(group_id: str, java_hash_partition: int) -> None:
    assert partition_for(group_id, 50) == java_hash_partition


def test_offset_key_and_value_bytes_are_kafkas() -> None:
    key = encode_key(OffsetKey("g", "t", 3))
    assert key == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x03"
    assert encode_key(GroupKey("g")) == b"\x00\x02\x00\x01g"
    v3 = encode_offset_value(OffsetValue(42, 7, "md", 1000))
    assert v3 == struct.pack(">hqih2sq", 3, 42, 7, 2, b"md", 1000)
    v1 = encode_offset_value(OffsetValue(42, -1, "", 1000, 5000))
    assert v1 == struct.pack(">hqhqq", 1, 42, 0, 1000, 5000)
    # Versions 0 and 2 (older Kafka) still read.
    assert decode_offset_value(struct.pack(">hqh2sq", 0, 9, 2, b"ab", 77)) == OffsetValue(
        9, -1, "ab", 77)
    assert decode_offset_value(struct.pack(">hqhq", 2, 9, 0, 77)) == OffsetValue(9, -1, "", 77)


members = st.builds(
    MemberValue, st.text(max_size=20), st.none() | st.text(max_size=10), st.text(max_size=10),
    st.text(max_size=10), st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1),
    st.binary(max_size=40), st.binary(max_size=40),
)
group_values = st.builds(
    GroupValue, st.text(max_size=10), st.integers(-1, 2**31 - 1), st.none() | st.text(max_size=10),
    st.none() | st.text(max_size=10), st.integers(-1, 2**62),
    st.lists(members, max_size=4).map(tuple),
)
offset_values = st.builds(
    OffsetValue, st.integers(-1, 2**62), st.integers(-1, 2**31 - 1), st.text(max_size=30),
    st.integers(0, 2**62), st.none() | st.integers(0, 2**62),
)


@given(group_values)
def test_group_value_round_trips(value: GroupValue) -> None:
    assert decode_group_value(encode_group_value(value)) == value


@given(offset_values)
def test_offset_value_round_trips(value: OffsetValue) -> None:
    decoded = decode_offset_value(encode_offset_value(value))
    # v1 (written only with an explicit expiry) has no leader epoch, as in Kafka.
    epoch = value.leader_epoch if value.expire_timestamp_ms is None else -1
    assert decoded == OffsetValue(value.offset, epoch, value.metadata, value.commit_timestamp_ms,
                                  value.expire_timestamp_ms)


@given(st.text(max_size=20), st.text(max_size=20), st.integers(-(2**31), 2**31 - 1))
def test_keys_round_trip(group: str, topic: str, partition: int) -> None:
    assert decode_key(encode_key(OffsetKey(group, topic, partition))) == OffsetKey(
        group, topic, partition)
    assert decode_key(encode_key(GroupKey(group))) == GroupKey(group)


@given(st.binary(max_size=80))
def test_garbage_gives_a_typed_error_never_a_crash(raw: bytes) -> None:
    for decode in (decode_key, decode_offset_value, decode_group_value):
        try:
            decode(raw)
        except GroupRecordError:
            pass


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_and_unknown_versions_are_group_record_errors(cut: int) -> None:
    raw = encode_group_value(GroupValue("consumer", 1, "range", "m", 0, (
        MemberValue("m", None, "c", "h", 1, 2, b"s", b"a"),)))
    with pytest.raises(GroupRecordError):
        decode_group_value(raw[:-cut])
    with pytest.raises(GroupRecordError):
        decode_group_value(raw + b"\x00")
    with pytest.raises(DecodeError):
        decode_key(b"\x00\x09\x00\x01g")


def test_replay_keeps_the_latest_value_per_key_and_honours_tombstones() -> None:
    stm = GroupStm()
    gv = GroupValue("consumer", 3, "range", None, 10, ())
    stm.apply_all([
        offset_record(OffsetKey("g", "t", 0), OffsetValue(1, -1, "", 0)),
        offset_record(OffsetKey("g", "t", 0), OffsetValue(2, -1, "", 0)),
        offset_record(OffsetKey("g", "t", 1), OffsetValue(5, -1, "", 0)),
        offset_record(OffsetKey("g", "t", 1), None),
        group_record("g", gv),
        group_record("dead", gv),
        group_record("dead", None),
        offset_record(OffsetKey("orphan", "t", 0), OffsetValue(9, -1, "", 0)),
    ])
    assert stm.offsets == {"g": {("t", 0): OffsetValue(2, -1, "", 0)},
                           "orphan": {("t", 0): OffsetValue(9, -1, "", 0)}}
    assert stm.groups == {"g": gv}
    assert stm.group_ids() == ["g", "orphan"]
    with pytest.raises(GroupRecordError):
        stm.apply(GroupRecord(b"\x00", None))
