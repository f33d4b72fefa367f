"""Transactional offsets through a real `GroupHost` (one replica, its own disk writer): a
TxnOffsetCommit is written as a transactional batch and stays pending; a marker (the call
`write_txn_marker` makes) is appended as Kafka's control batch and settles it; after a restart
(log closed, opened again, replayed) committed offsets are visible, aborted ones gone and an
unmarked transaction's offsets still pending until its marker comes."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pykka

from redshank.actors._async import resolve
from redshank.actors.disk_writer import Blocking, DiskWriter, OpenedPartition, OpenPartition
from redshank.actors.group_host import GroupCall, GroupHost, read_group_records
from redshank.cluster.group import (
    GroupConfig,
    OffsetCommitPartition,
    OffsetCommitResult,
    OffsetFetchGroup,
    OffsetFetchRequest,
    OffsetFetchResult,
    TxnMarker,
    TxnMarkerRequest,
    TxnMarkerResult,
    TxnOffsetCommitRequest,
)
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import ControlType, iter_records, parse_control_record
from redshank.storage import BatchCache, FlushCoordinator, LogConfig

E = ErrorCode
P1, P2 = 4000, 5000  # two transactional producers


def txn_commit(group: str, pid: int, partition: int, offset: int) -> GroupCall:
    return GroupCall(TxnOffsetCommitRequest(0, f"tx{pid}", group, pid, 2, (
        OffsetCommitPartition("t", partition, offset),)))


def marker(pid: int, committed: bool) -> GroupCall:
    return GroupCall(TxnMarkerRequest(0, TxnMarker(pid, 2, committed, 5)))


def fetch(group: str, stable: bool) -> GroupCall:
    return GroupCall(OffsetFetchRequest(0, (OffsetFetchGroup(group, (("t", (0, 1)),)),), stable))


def test_txn_offsets_and_markers_through_the_host_survive_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        flush = FlushCoordinator()
        writer = DiskWriter.start(flush, BatchCache(1 << 20))
        refs: list[pykka.ActorRef[Any]] = []

        async def start() -> tuple[pykka.ActorRef[Any], OpenedPartition]:
            opened: OpenedPartition = await writer.ask(
                OpenPartition(str(tmp_path / "p0"), LogConfig()), block=False)
            records = await writer.ask(
                Blocking(functools.partial(read_group_records, opened.log)), block=False)
            ref = GroupHost.start(0, 1, opened, flush, writer, loop, GroupConfig(), records)
            refs.append(ref)
            return ref, opened

        async def ask(ref: pykka.ActorRef[Any], call: GroupCall) -> Any:
            return await resolve(ref.ask(call, block=False))

        async def offsets(ref: pykka.ActorRef[Any], group: str, stable: bool = False
                          ) -> list[int | ErrorCode]:
            res = await ask(ref, fetch(group, stable))
            assert isinstance(res, OffsetFetchResult)
            return [p.error if p.error != E.NONE else p.offset for p in res.groups[0].partitions]

        try:
            host, opened = await start()
            for call in (txn_commit("g1", P1, 0, 10), txn_commit("g2", P1, 1, 21),
                         txn_commit("g1", P2, 1, 12), txn_commit("g2", P2, 0, 20)):
                res = await ask(host, call)
                assert isinstance(res, OffsetCommitResult)
                assert [p.error for p in res.partitions] == [E.NONE]
            assert await offsets(host, "g1") == [-1, -1]
            assert await offsets(host, "g1", stable=True) == [E.UNSTABLE_OFFSET_COMMIT] * 2
            assert await ask(host, marker(P1, True)) == TxnMarkerResult(E.NONE)
            assert await offsets(host, "g1") == [10, -1]
            assert await offsets(host, "g2") == [-1, 21]
            assert await offsets(host, "g2", stable=True) == [E.UNSTABLE_OFFSET_COMMIT, 21]

            # The batches on disk: four transactional ones, then the control batch.
            def batches() -> list[tuple[int, int, bool, bool, list[Any]]]:
                chunk = opened.log.read(opened.log.start_offset, 1 << 20)
                out = []
                for pos, h in iter_batches(chunk):
                    recs = list(iter_records(chunk, pos))
                    out.append((h.producer_id, h.producer_epoch, h.is_transactional,
                                h.is_control, [parse_control_record(r) for r in recs]
                                if h.is_control else []))
                return out
            on_disk = await writer.ask(Blocking(batches), block=False)
            assert [b[:4] for b in on_disk] == [(P1, 2, True, False), (P1, 2, True, False),
                                                (P2, 2, True, False), (P2, 2, True, False),
                                                (P1, 2, True, True)]
            (control,) = on_disk[-1][4]
            assert (control.kind, control.version, control.coordinator_epoch) == (
                ControlType.COMMIT, 0, 5)

            # Restart: P1's offsets replay committed, P2's still pending.
            await host.stop(block=False)
            await writer.ask(Blocking(opened.log.close), block=False)
            await writer.ask(Blocking(opened.kv.close), block=False)
            host, opened = await start()
            assert await offsets(host, "g1") == [10, -1]
            assert await offsets(host, "g1", stable=True) == [10, E.UNSTABLE_OFFSET_COMMIT]
            assert await ask(host, marker(P2, False)) == TxnMarkerResult(E.NONE)
            assert await ask(host, marker(P2, False)) == TxnMarkerResult(E.NONE)  # a retry
            assert await offsets(host, "g1", stable=True) == [10, -1]
            assert await offsets(host, "g2", stable=True) == [-1, 21]

            await host.stop(block=False)
            await writer.ask(Blocking(opened.log.close), block=False)
            await writer.ask(Blocking(opened.kv.close), block=False)
            host, opened = await start()  # the abort replays too
            assert await offsets(host, "g1", stable=True) == [10, -1]
            assert await offsets(host, "g2", stable=True) == [-1, 21]
        finally:
            for ref in refs:
                if ref.is_alive():
                    await ref.stop(block=False)
            await writer.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 30))

