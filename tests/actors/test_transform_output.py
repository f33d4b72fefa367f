"""A transform's pending output (`transform_output.PendingOutput`): outputs checked, routed to
their partition (`output_partition`) and encoded as they come, the same bytes as
`encode_batch`; forwarded input records (an `InputRecord` in the result) copied as they are
stored, decoding to the input's key, value, headers and timestamp; the produce path's `built`
entry skips the record walk but keeps the topic's rules."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from redshank.actors._async import resolve
from redshank.actors.embed.transform import InputRecord, Output, records_of
from redshank.actors.transform_output import OutputSequencer, PendingOutput
from redshank.actors.transform_spec import OUTPUT_BATCH_BYTES, encode_batch, output_partition
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka.handlers import produce
from redshank.cluster.partition.api import ProducerBatch
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from redshank.protocol.record_batch import Compression
from redshank.protocol.records import Record, build_batch, iter_records

NOW = 1_700_000_000_000


def test_outputs_are_routed_and_encoded_as_encode_batch_would() -> None:
    buf = PendingOutput(("a", "b"), {"a": 2, "b": 3}, NOW)
    expected: dict[tuple[str, int], list[tuple[bytes | None, bytes | None,
                                               tuple[tuple[str, bytes | None], ...], int]]] = {}
    for i in range(40):
        part = i % 4  # input partitions 0..3: 2 and 3 are above output a's count
        key = None if i % 5 == 0 else b"k%d" % i
        out = Output(b"v%d" % i, key, (("h", b"x"),) if i % 3 else (),
                     "b" if i % 2 else None, None if i % 7 else NOW - i)
        assert buf.add(part, out if i % 2 else [out]) == 1
        topic = out.topic or "a"
        target = output_partition(part, key, 2 if topic == "a" else 3)
        expected.setdefault((topic, target), []).append(
            (out.key, out.value, out.headers, NOW if out.timestamp is None else out.timestamp))
    # size: the records' bytes (each batch's 61-byte header not counted)
    assert buf.size == sum(len(encode_batch(r)) - 61 for r in expected.values())
    batches, unknown = buf.take()
    assert unknown == []
    assert dict(batches) == {key: encode_batch(r) for key, r in expected.items()}
    assert buf.size == 0 and buf.take() == ([], [])


def test_unknown_topics_are_kept_and_bad_results_add_nothing() -> None:
    buf = PendingOutput(("a", "gone"), {"a": 1, "gone": None}, NOW)
    assert buf.add(0, None) == 0
    assert buf.add(0, Output(b"x", topic="gone")) == 1
    with pytest.raises(TypeError, match="not an Output or InputRecord"):
        buf.add(0, [Output(b"y"), b"raw"])
    with pytest.raises(TypeError, match="not an output"):
        buf.add(0, [Output(b"y"), Output(b"z", topic="other")])
    batches, unknown = buf.take()
    assert batches == [] and unknown == [(0, Output(b"x", topic="gone"))]


def _request(topic: str, batch: bytes) -> ProduceRequest:
    return ProduceRequest(acks=-1, timeout_ms=1000, topic_data=(
        TopicProduceData(topic, (PartitionProduceData(0, batch),)),))


def test_built_batches_skip_the_walk_but_not_the_topics_rules() -> None:
    plain = TopicInfo("plain", uuid.UUID(int=1), (0,), (("max.message.bytes", "200"),))
    table = TopicInfo("table", uuid.UUID(int=2), (0,), (("cleanup.policy", "compact"),))
    topics = {"plain": plain, "table": table}
    small = encode_batch([(None, b"v", (), NOW)])
    writes, done = produce.plan(_request("plain", small), topics, built=True)
    assert done == {} and writes[0].records == small and writes[0].producer is None
    big = encode_batch([(None, b"v" * 300, (), NOW)])
    _w, done = produce.plan(_request("plain", big), topics, built=True)
    assert [r.error_code for r in done.values()] == [ErrorCode.MESSAGE_TOO_LARGE]
    # A compacted topic's keys are still walked: a keyless record is refused.
    _w, done = produce.plan(_request("table", small), topics, built=True)
    assert [r.error_code for r in done.values()] == [ErrorCode.INVALID_RECORD]


def test_a_partitions_batch_never_passes_output_batch_bytes() -> None:
    buf = PendingOutput(("a",), {"a": 1}, NOW)
    value = b"v" * 100_000
    for _ in range(25):  # 2.5 MB to one partition, taken at once
        buf.add(0, Output(value, headers=(("h", b"x" * 50),)))
    batches, _unknown = buf.take()
    assert [key for key, _b in batches] == [("a", 0)] * 3
    assert all(len(b) <= OUTPUT_BATCH_BYTES for _k, b in batches)
    assert [len(b) for _k, b in batches][:2] == [len(encode_batch(
        [(None, value, (("h", b"x" * 50),), NOW)] * 10))] * 2


Fields = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...], int]


def _input(records: list[Fields], compression: Compression = Compression.NONE,
           per_batch: int = 100) -> bytes:
    """`records` (key, value, headers, timestamp) as input batches from offset 0, `per_batch`
    records each (their offset deltas 0..per_batch-1)."""
    out = []
    for base in range(0, len(records), per_batch):
        out.append(build_batch(
            [Record(base + i, ts, k, v, h)
             for i, (k, v, h, ts) in enumerate(records[base:base + per_batch])],
            base_offset=base, compression=compression))
    return b"".join(out)


def _decoded(batch: bytes | memoryview) -> list[Fields]:
    return [(r.key, r.value, tuple(r.headers), r.timestamp)
            for r in iter_records(bytes(batch))]


# Every length varint's size boundary (63/64, 8191/8192 bytes), null key and value, headers
# (a null header value too), timestamps below the batch's first (negative deltas) and far
# above it; 230 records: offset deltas past 64 (and 128) in the input and the output.
EDGES: list[Fields] = [
    (None, None, (), 1_700_000_000_000),
    (b"k", b"v" * 63, (), 1_700_000_000_001),
    (b"k" * 63, b"v" * 64, (("h", b"x"),), 1_699_999_999_000),
    (b"k" * 64, b"v" * 8191, (("h", b"x"), ("n", None)), 1_700_000_000_063),
    (None, b"v" * 8192, (), 1_700_000_000_064),
    (b"", b"v" * 20_000, (("h" * 70, b"y" * 200),), 1_800_000_000_000),
    (b"k" * 9000, None, (), 1_700_000_000_000),
    (b"", b"", (), 0),
]
RECORDS = EDGES + [(b"%d" % i if i % 4 else None, b"x" * (i * 37 % 9000),
                    (("i", b"%d" % i),) if i % 3 else (), 1_700_000_000_000 + i)
                   for i in range(222)]


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.GZIP])
def test_a_forwarded_record_is_written_as_it_came(compression: Compression) -> None:
    """Returned, yielded or in a list: each record's key, value, headers and timestamp (the
    input's, not the time of the output) as they came, its bytes not parsed; the same batch
    as `encode_batch` of those fields, its size counted as an `Output`'s would be."""
    buf = PendingOutput(("out",), {"out": 4}, NOW)
    seen: list[InputRecord] = []
    for r in records_of("in", 2, _input(RECORDS, compression)):
        seen.append(r)
        how = r.offset % 3
        assert buf.add(2, r if how == 0 else [r] if how == 1 else iter((r,))) == 1
    assert len(seen) == len(RECORDS)
    assert all(r._data is not None for r in seen)  # never parsed
    size = buf.size
    batches, unknown = buf.take()
    assert unknown == [] and [key for key, _b in batches] == [("out", 2)]
    assert _decoded(batches[0][1]) == RECORDS
    assert bytes(batches[0][1]) == encode_batch(RECORDS)
    assert size == len(encode_batch(RECORDS)) - 61


def test_a_record_read_before_it_is_forwarded_is_written_from_its_fields() -> None:
    buf = PendingOutput(("out",), {"out": 1}, NOW)
    for r in records_of("in", 0, _input(RECORDS)):
        if r.offset % 2:
            assert r.value == RECORDS[r.offset][1]  # read: parsed
            assert r._data is None
        buf.add(0, r if r.offset % 4 < 2 else [r])
    (batch,), _unknown = buf.take()
    assert _decoded(batch[1]) == RECORDS


def test_forwarded_records_are_partitioned_as_outputs_are() -> None:
    """Output topic with fewer partitions than the input: by the key's hash (read from the
    record's bytes without parsing it), else the input partition modulo the count; a topic not
    found keeps the record as an `Output` with the input's timestamp."""
    data = _input(RECORDS)
    buf = PendingOutput(("out",), {"out": 2}, NOW)
    expected: dict[tuple[str, int], list[Fields]] = {}
    for r, fields in zip(records_of("in", 5, data), RECORDS, strict=True):
        buf.add(5, r)
        assert r._data is not None
        target = ("out", output_partition(5, fields[0], 2))
        expected.setdefault(target, []).append(fields)
    assert len(expected) == 2  # both partitions: keys hashed, null keys to 5 % 2
    batches, _unknown = buf.take()
    assert {key: _decoded(b) for key, b in batches} == expected
    gone = PendingOutput(("gone",), {"gone": None}, NOW)
    for r in records_of("in", 0, _input(EDGES)):
        gone.add(0, r)
    batches, unknown = gone.take()
    assert batches == [] and unknown == [
        (0, Output(v, k, h, None, ts)) for k, v, h, ts in EDGES]


def test_mixed_outputs_and_forwarded_records_keep_their_order() -> None:
    class Mixed:
        def process(self, record: InputRecord) -> Iterator[Output | InputRecord]:
            yield Output(b"before", timestamp=1)
            yield record
            yield Output(b"other", topic="b", timestamp=2)
            if record.offset == 3:
                yield record  # twice
                yield Output(b"after")

    buf = PendingOutput(("a", "b"), {"a": 1, "b": 1}, NOW)
    mixed = Mixed()
    for r in records_of("in", 0, _input(EDGES[:5])):
        assert buf.add(0, mixed.process(r)) == (5 if r.offset == 3 else 3)
    batches = dict(buf.take()[0])
    expected: list[Fields] = []
    for i, fields in enumerate(EDGES[:5]):
        expected += [(None, b"before", (), 1), fields]
        if i == 3:
            expected += [fields, (None, b"after", (), NOW)]
    assert _decoded(batches[("a", 0)]) == expected
    assert _decoded(batches[("b", 0)]) == [(None, b"other", (), 2)] * 5
    with pytest.raises(TypeError, match="not an Output or InputRecord"):
        buf.add(0, [next(records_of("in", 0, _input(EDGES[:1]))), b"raw"])
    assert buf.take()[0] == []  # nothing of the refused result added


def test_forwarded_records_split_batches_at_output_batch_bytes() -> None:
    big: list[Fields] = [(b"k%d" % i, b"v" * 300_000, (("h", b"x"),), 1000 + i)
                         for i in range(10)]
    buf = PendingOutput(("a",), {"a": 1}, NOW)
    for r in records_of("in", 0, _input(big)):
        buf.add(0, r)
    batches, _unknown = buf.take()
    assert [key for key, _b in batches] == [("a", 0)] * 4
    assert all(len(b) <= OUTPUT_BATCH_BYTES for _k, b in batches)
    assert [len(_decoded(b)) for _k, b in batches] == [3, 3, 3, 1]
    assert [f for _k, b in batches for f in _decoded(b)] == big


def test_a_forwarded_record_that_would_pass_output_batch_bytes_starts_the_next() -> None:
    """Second records sized around what exactly fills the batch: the batch never passes the
    bound, and is not cut before the second record while it fits with room to spare."""
    first = 600_000
    cuts = 0
    for extra in range(-40, 8):
        # 61 header; each record: its 3-byte length, attributes, 1-byte deltas, 3-byte value
        # length, 1-byte null key, 1-byte header count.
        second = OUTPUT_BATCH_BYTES - 61 - (first + 10) - 10 + extra
        records: list[Fields] = [(None, b"a" * first, (), 1), (None, b"b" * second, (), 2)]
        buf = PendingOutput(("a",), {"a": 1}, NOW)
        for r in records_of("in", 0, _input(records)):
            buf.add(0, r)
        batches, _unknown = buf.take()
        assert all(len(b) <= OUTPUT_BATCH_BYTES for _k, b in batches)
        assert [f for _k, b in batches for f in _decoded(b)] == records
        cuts += len(batches) - 1
        if extra < -21:  # ample room: one batch
            assert len(batches) == 1
    assert cuts > 0


def test_a_forwarded_record_holds_no_input_once_added() -> None:
    """The batch keeps copies: the input chunk (here a view of a bytearray, whose slices
    would be views too) is free once the records are added."""
    chunk = bytearray(_input(EDGES))
    buf = PendingOutput(("a",), {"a": 1}, NOW)
    for r in records_of("in", 0, memoryview(chunk)):
        buf.add(0, r)
    del r
    gc.collect()
    chunk.clear()  # BufferError if anything still held a view of it
    (batch,), _unknown = buf.take()
    assert _decoded(batch[1]) == EDGES


def test_a_flush_goes_as_requests_of_one_batch_per_partition_in_order() -> None:
    from redshank.actors.transform_instance import _rounds

    a, b = ("t", 0), ("t", 1)
    assert _rounds([(a, b"1"), (b, b"2"), (a, b"3"), (a, b"4")]) == [
        [(a, b"1"), (b, b"2")], [(a, b"3")], [(a, b"4")]]
    assert _rounds([]) == []


def _flushes(seq: OutputSequencer, values: list[list[bytes]]) -> list[ProduceRequest]:
    """Each list of values as one flush to t/0, taken (and numbered) in order by `seq`."""
    out = []
    for flush in values:
        buf = PendingOutput(("t",), {"t": 1}, NOW)
        for v in flush:
            buf.add(0, Output(v))
        batches, _unknown = buf.take(seq)
        assert [k for k, _b in batches] == [("t", 0)]
        out.append(_request("t", batches[0][1]))
    return out


def test_a_failed_flush_cannot_land_after_the_next_one(tmp_path: Path) -> None:
    """Flush k's append is lost (as when its produce fails), flush k+1's is sent meanwhile:
    the partition (the real leader actor, its producer-state table and log) refuses k+1 as out
    of sequence instead of appending it after the gap; k produced again lands first, then k+1;
    k produced once more (an answer lost after the write) is a duplicate, not written twice."""
    from redshank.actors.disk_writer import DiskWriter, OpenPartition
    from redshank.actors.partition_leader import PartitionLeader, Ready
    from redshank.cluster.partition.api import Append, Read
    from redshank.protocol.records import iter_records
    from redshank.storage import BatchCache, FlushCoordinator, LogConfig

    seq = OutputSequencer(producer_id=4242)
    first, lost, after = _flushes(seq, [[b"a", b"b"], [b"c", b"d", b"e"], [b"f"]])
    assert seq.take_opening() and not seq.take_opening()  # only t/0's first batch opens
    info = TopicInfo("t", uuid.UUID(int=3), (0,), ())

    def append(req: ProduceRequest) -> Append:
        writes, done = produce.plan(req, {"t": info}, built=True)
        assert done == {} and writes[0].producer is not None
        return Append(writes[0].records, -1, writes[0].producer)

    async def main() -> list[bytes | None]:
        coordinator = FlushCoordinator()
        writer = DiskWriter.start(coordinator, BatchCache(1 << 20))
        opened = await writer.ask(OpenPartition(str(tmp_path / "p0"), LogConfig()), block=False)
        leader = PartitionLeader.start("t", 0, opened, coordinator, writer,
                                       asyncio.get_running_loop())
        assert await resolve(leader.ask(Ready(), block=False)) is True

        async def produce_(req: ProduceRequest) -> tuple[int, int]:
            r = await (await leader.ask(append(req), block=False)).acked
            return r.error_code, r.base_offset

        try:
            assert await produce_(first) == (ErrorCode.NONE, 0)
            # `lost` failed: not appended. The next flush must not land after the gap.
            code, _o = await produce_(after)
            assert code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
            assert await produce_(lost) == (ErrorCode.NONE, 2)  # the retry, in order
            assert await produce_(after) == (ErrorCode.NONE, 5)
            assert await produce_(lost) == (ErrorCode.NONE, 2)  # a duplicate: its offset
            values: list[bytes | None] = []
            while len(values) < 6:  # a read may stop at a batch boundary
                read = await resolve(leader.ask(Read(len(values), 1 << 20, -1, False, 0),
                                                block=False))
                assert read.records
                values += [r.value for r in iter_records(read.records)]
            end = await resolve(leader.ask(Read(6, 1 << 20, -1, False, 0), block=False))
            assert (end.high_watermark, end.records) == (6, b"")  # nothing written twice
            return values
        finally:
            await leader.stop(block=False)
            await writer.stop(block=False)

    values = asyncio.run(asyncio.wait_for(main(), 30))
    assert values == [b"a", b"b", b"c", b"d", b"e", b"f"]


def test_a_new_epoch_numbers_from_zero_and_fences_the_old_one() -> None:
    from redshank.cluster.kafka import ProducerStateTable, SequenceError

    seq = OutputSequencer(producer_id=7)
    info = {"t": TopicInfo("t", uuid.UUID(int=4), (0,), ())}
    old_a, old_b = _flushes(seq, [[b"a"], [b"b"]])
    assert seq.new_epoch() and seq.epoch == 1
    new, = _flushes(seq, [[b"c"]])
    assert seq.take_opening()  # t/0's first batch at the new epoch
    table = ProducerStateTable()

    def batch(req: ProduceRequest) -> ProducerBatch:
        writes, _done = produce.plan(req, info, built=True)
        assert writes[0].producer is not None
        return writes[0].producer

    assert batch(old_b) == ProducerBatch(7, 0, 1, 1)
    assert batch(new) == ProducerBatch(7, 1, 0, 0)
    table.record(batch(old_a), 0, 0)
    table.record(batch(new), 1, 1)
    refused = table.check(batch(old_b))  # still in flight from the run before: fenced
    assert isinstance(refused, SequenceError)
    assert refused.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    exhausted = OutputSequencer(producer_id=8, epoch=2**15 - 1)
    assert not exhausted.new_epoch()
