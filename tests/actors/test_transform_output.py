"""A transform's pending output (`transform_output.PendingOutput`): outputs checked, routed to
their partition (`output_partition`) and encoded as they come, the same bytes as
`encode_batch`; the produce path's `built` entry skips the record walk but keeps the topic's
rules."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from redshank.actors._async import resolve
from redshank.actors.embed.transform import Output
from redshank.actors.transform_output import OutputSequencer, PendingOutput
from redshank.actors.transform_spec import encode_batch, output_partition
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka.handlers import produce
from redshank.cluster.partition.api import ProducerBatch
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)

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
    with pytest.raises(TypeError, match="not Output"):
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
    from redshank.actors.transform_spec import OUTPUT_BATCH_BYTES

    buf = PendingOutput(("a",), {"a": 1}, NOW)
    value = b"v" * 100_000
    for _ in range(25):  # 2.5 MB to one partition, taken at once
        buf.add(0, Output(value, headers=(("h", b"x" * 50),)))
    batches, _unknown = buf.take()
    assert [key for key, _b in batches] == [("a", 0)] * 3
    assert all(len(b) <= OUTPUT_BATCH_BYTES for _k, b in batches)
    assert [len(b) for _k, b in batches][:2] == [len(encode_batch(
        [(None, value, (("h", b"x" * 50),), NOW)] * 10))] * 2


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
