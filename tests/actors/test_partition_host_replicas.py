"""Three replicas of one partition on the actor host (each with its own disk-writer thread and
flush coordinator, on one event loop), their Raft messages carried by an in-process hub: the
host ticks, sends and steps, so a leader is elected, batches replicate and commit, and when the
leader's host stops the other two elect a new leader that serves the committed batches and
takes new ones."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable
from pathlib import Path

import pytest

from redshank.actors.disk_writer import DiskWriter, OpenPartition
from redshank.actors.partition_host import PartitionHost, Replicas
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.raft.types import Index, Message, MessageType, NodeId
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.records import BatchBuilder, iter_records
from redshank.storage import BatchCache, FlushCoordinator, Log, LogConfig

VOTERS = frozenset(NodeId(n) for n in (1, 2, 3))
DEADLINE_S = 20.0


def batch(value: bytes) -> bytearray:
    b = BatchBuilder()
    b.append(value, timestamp=1000)
    return bytearray(b.build())


def values(log: Log) -> list[bytes]:
    """Every record value the log holds (written, durable or not)."""
    out: list[bytes] = []
    offset = log.start_offset
    while offset <= log.dirty_offset:
        data = log.read(offset, 1 << 20)
        got = list(iter_records(data, verify_crc=False))
        out += [r.value or b"" for r in got]
        offset = got[-1].offset + 1
    return out


async def wait_for(what: str, cond: object) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not cond():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE_S} s")
        await asyncio.sleep(0.01)  # a condition the hosts' timers move; bounded above


def test_three_hosts_elect_replicate_and_fail_over(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        hosts: dict[int, PartitionHost] = {}
        answers: dict[int, dict[Hashable, PartitionResult]] = {n: {} for n in (1, 2, 3)}
        stopped: set[int] = set()
        writers = []

        def sender(src: int) -> Replicas:
            def send(messages: list[Message]) -> None:
                for m in messages:
                    dst = int(m.dst)
                    if src not in stopped and dst not in stopped:
                        loop.call_soon(lambda m=m, dst=dst: dst in stopped
                                       or hosts[dst].step(m))
            return Replicas(NodeId(src), VOTERS, send, tick_s=0.01, seed=src)

        try:
            for n in (1, 2, 3):
                coordinator = FlushCoordinator()
                writer = DiskWriter.start(coordinator, BatchCache(1 << 20))
                writers.append(writer)
                opened = await writer.ask(OpenPartition(str(tmp_path / f"n{n}"), LogConfig()),
                                          block=False)
                hosts[n] = PartitionHost(
                    opened, coordinator, writer, loop,
                    on_answer=lambda w, r, n=n: answers[n].__setitem__(w, r),
                    on_high_watermark=lambda hw: None,
                    on_flush_failed=lambda exc: pytest.fail(f"flush failed: {exc!r}"),
                    replicas=sender(n))

            def leaders() -> list[int]:
                return [n for n, h in hosts.items()
                        if n not in stopped and h.part.is_ready_leader()]

            await wait_for("a leader", lambda: len(leaders()) == 1)
            first = leaders()[0]
            for i in range(20):
                assert hosts[first].append(Append(batch(b"v%d" % i), -1, None), i) is None
            await wait_for("20 acks", lambda: len(answers[first]) == 20)
            assert [answers[first][i] for i in range(20)] == [
                PartitionResult(0, i, 0) for i in range(20)]
            want = [b"v%d" % i for i in range(20)]
            await wait_for("replicated", lambda: all(values(h.log) == want
                                                     for h in hosts.values()))

            stopped.add(first)
            hosts[first].stop()
            started = loop.time()
            await wait_for("a new leader", lambda: len(leaders()) == 1)
            took = loop.time() - started
            second = leaders()[0]
            assert second != first and took < DEADLINE_S
            assert hosts[second].part.high_watermark == 20  # every acked batch is there
            assert hosts[second].append(Append(batch(b"after"), -1, None), "a") is None
            await wait_for("ack after failover", lambda: "a" in answers[second])
            assert answers[second]["a"] == PartitionResult(0, 20, 0)
        finally:
            for h in hosts.values():
                h.stop()
            for w in writers:
                await w.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 60))


class GatedCoordinator(FlushCoordinator):
    """Runs no round while `gate` is clear (a flush held on its way to the disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    def run_round(self) -> int:
        assert self.gate.wait(DEADLINE_S), "the gate was never opened"
        return super().run_round()


def test_a_flush_overtaken_by_a_truncation_is_retried_not_a_disk_failure(tmp_path: Path) -> None:
    """A deposed leader's flush is on its way to the disk when the new leader's entries cut its
    uncommitted suffix below the offset that flush asked for: the flush then reaches less than
    it asked (`offset N not durable: flush reached M`) with no disk fault. The host retries it
    instead of failing the partition (the storage-error state, KAFKA_STORAGE_ERROR to every
    waiting produce, flushes paused), as a SIGSTOPped leader woken into a new term did: the
    new leader's append, queued while it slept, matched below its suffix and was stepped
    before its own flush ran. Here that append is stepped in while the flush is held."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        hosts: dict[int, PartitionHost] = {}
        answers: dict[int, dict[Hashable, PartitionResult]] = {n: {} for n in (1, 2, 3)}
        failures: list[BaseException] = []
        cut: set[int] = set()
        coordinators: dict[int, GatedCoordinator] = {}
        writers = []

        def sender(src: int) -> Replicas:
            def send(messages: list[Message]) -> None:
                for m in messages:
                    dst = int(m.dst)
                    if src not in cut and dst not in cut:
                        loop.call_soon(lambda m=m, dst=dst: dst in cut or hosts[dst].step(m))
            return Replicas(NodeId(src), VOTERS, send, tick_s=0.01, seed=src)

        try:
            for n in (1, 2, 3):
                coordinators[n] = GatedCoordinator()
                writer = DiskWriter.start(coordinators[n], BatchCache(1 << 20))
                writers.append(writer)
                opened = await writer.ask(OpenPartition(str(tmp_path / f"n{n}"), LogConfig()),
                                          block=False)
                hosts[n] = PartitionHost(
                    opened, coordinators[n], writer, loop,
                    on_answer=lambda w, r, n=n: answers[n].__setitem__(w, r),
                    on_high_watermark=lambda hw: None,
                    on_flush_failed=failures.append, replicas=sender(n))

            def leaders(among: set[int]) -> list[int]:
                return [n for n in among if hosts[n].part.is_ready_leader()]

            await wait_for("a leader", lambda: len(leaders({1, 2, 3})) == 1)
            old = leaders({1, 2, 3})[0]
            rest = {1, 2, 3} - {old}
            cut.add(old)  # it leads alone from now on: nothing it appends commits
            coordinators[old].gate.clear()  # and its next flush waits on its way
            b = BatchBuilder()
            for v in (b"x", b"y", b"z"):
                b.append(v, timestamp=1000)
            assert hosts[old].append(Append(bytearray(b.build()), -1, None), "stale") is None
            await wait_for("the old leader's flush of offsets 0..2 asked for",
                           lambda: coordinators[old].pending() > 0)
            assert hosts[old].log.dirty_offset == 2
            await wait_for("a new leader", lambda: len(leaders(rest)) == 1)
            new = leaders(rest)[0]
            assert hosts[new].append(Append(batch(b"n"), -1, None), "n") is None
            await wait_for("the new leader's ack", lambda: "n" in answers[new])
            assert answers[new]["n"] == PartitionResult(0, 0, 0)
            # The new leader's append from where both logs agree, as it would send it once it
            # found that point: stepped in before the held flush runs.
            lead, mine = hosts[new].part.raft_log, hosts[old].part.raft_log
            prev = Index(min(lead.last_index(), mine.last_index()))
            while prev > 0 and lead.term(prev) != mine.term(prev):
                prev = Index(prev - 1)
            core = hosts[new].part.consensus.core
            hosts[old].step(Message(MessageType.APPEND, NodeId(new), NodeId(old), core.term,
                                    index=prev, log_term=lead.term(prev),
                                    entries=tuple(lead.slice(Index(prev + 1),
                                                             lead.last_index())),
                                    commit=core.commit))
            await wait_for("the old leader's suffix replaced",
                           lambda: values(hosts[old].log) == [b"n"])
            cut.clear()
            coordinators[old].gate.set()  # the held flush now reaches less than it asked
            await wait_for("the stale produce answered", lambda: "stale" in answers[old])
            assert answers[old]["stale"].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
            # It follows on, its flushes not paused: a new batch commits on all three.
            assert hosts[new].append(Append(batch(b"m"), -1, None), "m") is None
            await wait_for("replicated everywhere", lambda: "m" in answers[new] and all(
                values(h.log) == [b"n", b"m"] and h.log.flushed_offset == 1
                for h in hosts.values()))
            assert failures == []
            assert not hosts[old].paused
        finally:
            for c in coordinators.values():
                c.gate.set()
            for h in hosts.values():
                h.stop()
            for w in writers:
                await w.stop(block=False)

    asyncio.run(asyncio.wait_for(main(), 60))
