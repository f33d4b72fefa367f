"""A real `TxnHost` (one replica, its own disk writer, the real `TxnCoordinator`): it serves once
its log is replayed, gets producer ids through its `TxnIO`, persists each transition before
answering, writes a transaction's markers through the `TxnIO` asking again the partitions that
answered a retriable error (and only those) until all are written, and after a restart replays
its log: the transaction completed, the producer's id kept (a new epoch of it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pykka

from redshank.actors._async import resolve
from redshank.actors.disk_writer import Blocking, DiskWriter, OpenedPartition, OpenPartition
from redshank.actors.txn_host import (
    MARKER_GONE,
    PRODUCER_ID_ASK,
    TxnCall,
    TxnHost,
    WhenServing,
    marker_retriable,
)
from redshank.cluster.kafka import TopicPartition
from redshank.cluster.txn.api import (
    AddPartitionsRequest,
    AddPartitionsResult,
    DescribedTransaction,
    DescribeTransactionsRequest,
    DescribeTransactionsResult,
    EndTxnRequest,
    EndTxnResult,
    InitProducerIdRequest,
    InitProducerIdResult,
    ProducerIdBlock,
    TxnState,
    WriteMarkers,
)
from redshank.cluster.txn.coordinator import TxnConfig
from redshank.protocol.error_codes import ErrorCode
from redshank.storage import BatchCache, FlushCoordinator, LogConfig

E = ErrorCode
A0, A1, GONE = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("deleted", 0)


class ScriptedIO:
    """The host's `TxnIO` seam: producer ids from 1000 up; partition a/1 answers
    NOT_LEADER_OR_FOLLOWER to the first marker attempt (its leader moving), the deleted
    topic's partition is gone."""

    def __init__(self) -> None:
        self.attempts: list[tuple[bool, tuple[TopicPartition, ...]]] = []
        self.next_id = 1000
        self.id_asks: list[int] = []

    async def producer_ids(self, count: int) -> ProducerIdBlock | None:
        self.id_asks.append(count)
        self.next_id += count
        return ProducerIdBlock(self.next_id - count, count)

    async def write_markers(self, markers: WriteMarkers, partitions: tuple[TopicPartition, ...]
                            ) -> dict[TopicPartition, int]:
        self.attempts.append((markers.committed, partitions))
        first = len(self.attempts) == 1
        return {tp: MARKER_GONE if tp == GONE
                else E.NOT_LEADER_OR_FOLLOWER if first and tp == A1 else E.NONE
                for tp in partitions}


def test_marker_errors_retried_as_kafkas_completion_handler_does() -> None:
    for error in (E.NOT_LEADER_OR_FOLLOWER, E.UNKNOWN_TOPIC_OR_PARTITION, E.NOT_ENOUGH_REPLICAS,
                  E.REQUEST_TIMED_OUT, E.KAFKA_STORAGE_ERROR, E.NOT_COORDINATOR,
                  E.COORDINATOR_LOAD_IN_PROGRESS):
        assert marker_retriable(error), error
    for error in (E.NONE, MARKER_GONE, E.INVALID_PRODUCER_EPOCH,
                  E.TRANSACTION_COORDINATOR_FENCED, E.UNSUPPORTED_FOR_MESSAGE_FORMAT):
        assert not marker_retriable(error), error


def test_a_transaction_through_the_host_and_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        flush = FlushCoordinator()
        writer = DiskWriter.start(flush, BatchCache(1 << 20))
        io = ScriptedIO()
        refs: list[pykka.ActorRef[Any]] = []

        async def start() -> tuple[pykka.ActorRef[Any], OpenedPartition]:
            opened: OpenedPartition = await writer.ask(
                OpenPartition(str(tmp_path / "txn0"), LogConfig()), block=False)
            ref = TxnHost.start(0, opened, flush, writer, loop, TxnConfig(), lambda: io)
            refs.append(ref)
            assert await resolve(ref.ask(WhenServing(), block=False)) is True
            return ref, opened

        async def ask(ref: pykka.ActorRef[Any], request: Any) -> Any:
            return await resolve(ref.ask(TxnCall(request), block=False))

        async def described(ref: pykka.ActorRef[Any]) -> DescribedTransaction:
            res = await ask(ref, DescribeTransactionsRequest(("t",)))
            assert isinstance(res, DescribeTransactionsResult)
            return res.transactions[0]

        async def until_complete(ref: pykka.ActorRef[Any]) -> DescribedTransaction:
            for _ in range(200):  # bounded: 200 x 10 ms
                d = await described(ref)
                if d.state is TxnState.COMPLETE_COMMIT:
                    return d
                assert d.state is TxnState.PREPARE_COMMIT, d
                await asyncio.sleep(0.01)
            raise AssertionError("markers not written")

        try:
            host, opened = await start()
            init = await ask(host, InitProducerIdRequest("t", 60_000))
            assert init == InitProducerIdResult(E.NONE, 1000, 0)
            assert io.id_asks == [PRODUCER_ID_ASK]  # one block, not one id per ask
            added = await ask(host, AddPartitionsRequest("t", 1000, 0, (A0, A1, GONE)))
            assert added == AddPartitionsResult(((A0, E.NONE), (A1, E.NONE), (GONE, E.NONE)))
            assert (await described(host)).state is TxnState.ONGOING
            assert await ask(host, EndTxnRequest("t", 1000, 0, True)) == EndTxnResult(E.NONE)
            done = await until_complete(host)
            assert (done.producer_id, done.producer_epoch) == (1000, 0)
            # Every partition once; a/1 again after its retriable error, alone.
            assert io.attempts == [(True, (A0, A1, GONE)), (True, (A1,))]

            await host.stop(block=False)
            await writer.ask(Blocking(opened.log.close), block=False)
            await writer.ask(Blocking(opened.kv.close), block=False)
            host, opened = await start()
            again = await described(host)
            assert (again.state, again.producer_id) == (TxnState.COMPLETE_COMMIT, 1000)
            # The restarted host skips the rest of its block: the next new id is a new block's.
            assert io.id_asks == [PRODUCER_ID_ASK] * 2
            other = await ask(host, InitProducerIdRequest("u", 60_000))
            assert other == InitProducerIdResult(E.NONE, 1000 + PRODUCER_ID_ASK, 0)
            # The id is the transactional id's: a new epoch of it, not a new id.
            assert await ask(host, InitProducerIdRequest("t", 60_000)) == InitProducerIdResult(
                E.NONE, 1000, 1)
        finally:
            for ref in refs:
                if ref.is_alive():
                    await ref.stop(block=False)
            await writer.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 30))
