"""The batch-carrying messages' envelope codecs: round trips, no pickle, records read in place, and
the copies of a batch on a real cross-core produce and fetch (one into the ring, one out)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redshank.actors import partition_codecs
from redshank.actors.runtime.envelope import Encoding, Kind, decode, detach, encode
from redshank.actors.watermarks import HighWatermark, Pushed
from redshank.cluster.partition.api import (
    Append,
    PartitionResult,
    ProducerBatch,
    Read,
    ReadResult,
)
from redshank.tools.bench.copies import measure

I64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
RECORDS = st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=2048).map(memoryview),
    st.binary(max_size=2048).map(bytearray),
)
PRODUCERS = st.one_of(st.none(), st.builds(ProducerBatch, I64, I64, I64, I64, st.booleans()))
APPENDS = st.builds(Append, RECORDS, I64, PRODUCERS)
READS = st.builds(Read, I64, I64, I64, st.booleans(), st.one_of(st.none(), I64),
                  st.integers(min_value=0, max_value=1))
READ_RESULTS = st.builds(ReadResult, I64, I64, I64, st.one_of(st.none(), RECORDS), I64,
                         st.lists(st.tuples(I64, I64), max_size=4).map(tuple))
PARTITION_RESULTS = st.builds(PartitionResult, I64, I64, I64, st.one_of(st.none(), st.text()))
PUSHES = st.builds(Pushed, st.uuids(), I64, I64, I64, st.binary(max_size=2048))
HIGH_WATERMARKS = st.builds(HighWatermark, st.text(max_size=249), I64, I64,
                            st.one_of(st.none(), PUSHES))
MESSAGES = st.one_of(APPENDS, READS, READ_RESULTS, PARTITION_RESULTS, HIGH_WATERMARKS)
CODEC_IDS = {Append: partition_codecs.APPEND_ID, Read: partition_codecs.READ_ID,
             ReadResult: partition_codecs.READ_RESULT_ID,
             PartitionResult: partition_codecs.PARTITION_RESULT_ID,
             HighWatermark: partition_codecs.HIGH_WATERMARK_ID}


def frame_of(message: Any, kind: Kind = Kind.ASK, name: str = "partition/t/0") -> bytearray:
    first, second = encode(kind, 9, name, message)
    return bytearray(first) + second


@given(MESSAGES, st.sampled_from([Kind.ASK, Kind.TELL, Kind.REPLY, Kind.ACKED]))
def test_round_trip_by_codec_never_pickled(message: Any, kind: Kind) -> None:
    name = "" if kind in (Kind.REPLY, Kind.ACKED) else "partition/t/0"
    first, second = encode(kind, 9, name, message)
    assert first[1] == Encoding.CODEC and first[12 + len(name)] == CODEC_IDS[type(message)]
    env = decode(memoryview(bytearray(first) + second))  # copy=True: detached
    assert (env.kind, env.corr, env.name) == (kind, 9, name)
    assert env.message == message  # bytes, bytearray and views compare by content


@given(MESSAGES)
def test_in_place_decode_then_detach_equals_the_copying_decode(message: Any) -> None:
    frame = frame_of(message)
    in_place = decode(memoryview(frame), copy=False).message
    detached = detach(in_place)
    frame[:] = bytes(len(frame))  # the ring slot is reused: a detached message must not care
    assert detached == message
    for field in ("records",):
        if isinstance(getattr(detached, field, None), memoryview):
            pytest.fail(f"{type(detached).__name__}.{field} still a view after detach")


def test_none_empty_and_present_records_stay_apart() -> None:
    for records in (None, b"", b"x"):
        out = decode(memoryview(frame_of(ReadResult(0, 5, 1, records), Kind.REPLY, ""))).message
        assert out.records == records and (out.records is None) == (records is None)
    assert decode(memoryview(frame_of(Append(b"", 1, None)))).message == Append(b"", 1, None)


def test_the_tail_is_the_senders_buffer_itself() -> None:
    view = memoryview(bytes(range(256)) * 64)[100:9000]  # a slice of a request frame
    _first, second = encode(Kind.ASK_TWO_PHASE, 1, "p", Append(view, -1, None))
    assert second is view  # no intermediate bytes: the ring copies it from there
    _first, second = encode(Kind.REPLY, 1, "", ReadResult(0, 1, 0, view))
    assert second is view


def test_decoded_records_are_a_read_only_view_into_the_frame() -> None:
    producer = ProducerBatch(7, 1, 10, 19)
    records = bytes(range(200)) * 50
    frame = frame_of(Append(memoryview(records), -1, producer))
    msg = decode(memoryview(frame), copy=False).message
    assert isinstance(msg.records, memoryview) and msg.records.obj is frame
    assert msg.records.readonly  # the log cannot take it by mistake: it rewrites in place
    assert (bytes(msg.records), msg.acks, msg.producer) == (records, -1, producer)
    frame[-1] ^= 0xFF  # read in place: the view sees the frame's bytes
    assert msg.records[-1] == records[-1] ^ 0xFF
    out = detach(msg)
    assert type(out.records) is bytearray  # the writable buffer the owner's log keeps
    assert bytes(out.records) == bytes(msg.records)
    result = decode(memoryview(frame_of(ReadResult(0, 9, 0, records), Kind.REPLY, "")),
                    copy=False).message
    assert isinstance(result.records, memoryview) and result.records.readonly
    assert type(detach(result).records) is bytes


def test_a_large_batch_round_trips() -> None:
    records = bytes(range(256)) * 8192  # 2 MiB
    out = decode(memoryview(frame_of(Append(records, -1, ProducerBatch(1, 2, 3, 4))))).message
    assert bytes(out.records) == records and out.producer == ProducerBatch(1, 2, 3, 4)


def test_values_out_of_the_structs_range_fall_back_to_pickle() -> None:
    for message in (Append(b"abc", 1 << 64, None), Read(0, 1, 2, True, -(1 << 70)),
                    HighWatermark("t" * 70_000, 0, 1), PartitionResult(0, 1, 2, "\udcff")):
        first, _ = encode(Kind.ASK, 1, "p", message)
        assert first[1] == Encoding.PICKLE
        assert decode(memoryview(frame_of(message))).message == message


def test_a_push_carries_its_batches_and_topic_id() -> None:
    tid = uuid.uuid4()
    push = HighWatermark("orders", 3, 120, Pushed(tid, 100, 120, 7, b"batches" * 100))
    out = decode(memoryview(frame_of(push, Kind.TELL, "watermarks")), copy=False).message
    assert out == push and type(out.pushed.records) is bytes
    assert out.pushed is not None and not out.pushed.stable
    stable = HighWatermark("orders", 3, 120, Pushed(tid, 100, 120, 7, b"x", stable=True))
    assert decode(memoryview(frame_of(stable, Kind.TELL, "watermarks"))).message == stable


@pytest.mark.parametrize("busy", [False, True])
def test_a_cross_core_produce_copies_its_batch_into_the_ring_and_once_out(busy: bool) -> None:
    # The real runtime (two routers, their ring transports and shared-memory rings): the
    # session core's view goes straight into the ring; the owner reads it in place and copies it
    # once, into the buffer its log keeps (inline) or out of the ring when the append is queued.
    out = measure(1 << 20, busy=busy)
    assert out["intact"] and out["records_read_in_place"] is (not busy)
    produce = out["produce"]
    assert produce["ring"] == 1.0
    assert produce["session_send"] == produce["owner_reply"] == produce["session_receive"] == 0
    # Inline: the handler copies the view; queued: the router copies it out, the handler keeps it.
    assert (produce["owner_decode"], produce["owner_copy"]) == ((1.0, 0) if busy else (0, 1.0))
    fetch = out["fetch"]  # the cache's view into the ring; out of it on the session core
    assert (fetch["owner_reply"], fetch["ring"], fetch["session_receive"]) == (0, 1.0, 1.0)


def test_any_core_process_has_the_codecs_importing_only_the_runtime() -> None:
    # A core process (forkserver or spawn) imports the runtime's core_process before anything
    # else: that alone must register the codecs, or a peer's frames would not decode.
    code = ("import redshank.actors.runtime.core_process\n"
            "from redshank.actors.runtime import envelope\n"
            "from redshank.cluster.partition.api import Append, ReadResult\n"
            "assert Append in envelope._by_type and ReadResult in envelope._by_type\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
