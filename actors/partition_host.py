"""The I/O of one sans-IO partition replica on its actor's loop: the thin host both the
partition-leader actor and the group host run their `__consumer_offsets`/Kafka partition with.

Concern: doing what `cluster/partition/Partition` asks, in order, once per loop turn: answers go
to `on_answer(waiter, result)`, a moved high watermark to `on_high_watermark(hw)`, and a flush
(the partition's kvstore, if written, and its log, in the core's next round of fdatasyncs: the
flush coordinator run by the disk writer) ends in `flush_done`, or in `on_flush_failed(exc)`
after the partition failed what was waiting (a flush that found the log cut below what it asked
for, by a new leader's entries, is no disk failure: it is retried). Appends happen inside the
partition, without I/O. A replicated partition (`Replicas`: this node, the voters, how to send
to them) is ticked every `tick_s`, sends what Raft sends through `Replicas.send` in order (votes
and append responses only once what they depend on is durable: the partition holds them until
`flush_done`), and steps what its peers send (`step`). With one replica there is nothing to
send and no tick. Must not know: Kafka requests, what the owner does with answers, how messages
travel.

    owner.append --> PartitionHost.append --> Partition.append (Raft propose -> Log.append)
    call_soon    --> turn(): Partition.take_io -> answers, high watermark, send, start a flush
    flush round  --> (writer thread) -> loop: Partition.flush_done -> turn()
    Io.load      --> (writer thread) EntryLoad.read -> loop: Partition.entries_loaded -> turn()
    peer message --> step --> Partition.step -> turn()        timer --> tick -> turn()
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

import pykka
import structlog

from redshank.actors.disk_writer import Blocking, OpenedPartition, RunRound
from redshank.actors.runtime import LoopFuture
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.partition.partition import FULL, Partition
from redshank.cluster.partition.raft_log import EntryLoad, Loaded
from redshank.cluster.raft.types import NO_NODE, Message, NodeId
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage import FlushCoordinator, FlushHandle, KvStore, Log
from redshank.storage.errors import StorageError

__all__ = ["PartitionHost", "Replicas"]

_logger = structlog.get_logger("redshank.partition")


@dataclass(frozen=True, slots=True)
class Replicas:
    """A replicated partition's group: this replica's node, the voters (this node included),
    where Raft's messages go (`send`, in order; whatever carries them to the peers), and the
    replica leadership goes back to (`preferred`, NO_NODE: none; `Partition`'s balance)."""

    node: NodeId
    voters: frozenset[NodeId]
    send: Callable[[list[Message]], None]
    tick_s: float = 0.1
    seed: int = 0
    preferred: NodeId = NO_NODE


class PartitionHost:
    def __init__(self, opened: OpenedPartition, coordinator: FlushCoordinator,
                 writer: pykka.ActorRef[Any], loop: asyncio.AbstractEventLoop, *,
                 on_answer: Callable[[Hashable, PartitionResult], None],
                 on_high_watermark: Callable[[int], None],
                 on_flush_failed: Callable[[BaseException], None],
                 on_flushed: Callable[[], None] | None = None,
                 on_leader: Callable[[int], None] | None = None,
                 replicas: Replicas | None = None) -> None:
        """`on_leader(term)`: the partition serves as leader in `term` from now on (an entry of
        that term committed); called once per term."""
        self.coordinator = coordinator
        self.writer = writer
        self.loop = loop
        self._on_answer = on_answer
        self._on_high_watermark = on_high_watermark
        self._on_flush_failed = on_flush_failed
        self._on_flushed = on_flushed
        self._on_leader = on_leader
        self._announced_term = -1
        self.replicas = replicas
        self._tick: asyncio.TimerHandle | None = None
        # Appends the partition could not take yet (its batcher's memory is full), in order.
        self._backlog: deque[tuple[Append, Hashable, int]] = deque()
        # No new flush starts while paused (the owner's storage-error state); `flush()` forces.
        self.paused = False
        self._turn_scheduled = False
        self._flush_owed = False
        self.flushing = False
        self._generation = 0  # bumped by `install`: flushes of the partition before are ignored
        self._ready: list[LoopFuture[bool]] = []
        # A flush of the log asked for ahead of Raft's next one: (offset, handle).
        self._ahead: tuple[int, FlushHandle] | None = None
        self._flushing_to = -1  # the log offset the running flush asked for
        self.install(opened)

    def install(self, opened: OpenedPartition) -> None:
        """Host the partition `opened` (at start, and after a reopen): it elects itself."""
        self._generation += 1
        self.flushing = False
        self._flush_owed = False
        self._ahead = None
        self.log: Log = opened.log
        self.kv: KvStore = opened.kv
        r = self.replicas
        if r is None:
            self.part = Partition(opened.log, opened.kv, opened.recovered,
                                  opened.producers)
        else:
            self.part = Partition(opened.log, opened.kv, opened.recovered,
                                  opened.producers, voters=r.voters,
                                  node=r.node, seed=r.seed, preferred=r.preferred)
            if len(r.voters) > 1 and self._tick is None:
                self._tick = self.loop.call_later(r.tick_s, self._on_tick)
        self.part.start()
        self.turn()

    def _on_tick(self) -> None:
        assert self.replicas is not None
        self._tick = self.loop.call_later(self.replicas.tick_s, self._on_tick)
        self.part.tick()
        self.turn()

    def step(self, message: Message) -> None:
        """A Raft message from a peer of this partition's group."""
        self.part.step(message)
        self.schedule_turn()

    # ---- inputs -----------------------------------------------------------------------------

    def append(self, msg: Append, waiter: Hashable, now_ms: int = -1) -> PartitionResult | None:
        """Append (sequenced now); the answer is returned now or goes to `on_answer` later.
        While the partition's batcher is full the append waits here, in order, and is made
        once a write frees memory (the producer only sees a later acknowledgement)."""
        if self._backlog:
            self._backlog.append((msg, waiter, now_ms))
            return None
        res = self._append(msg, waiter, now_ms)
        if res is FULL:
            self._backlog.append((msg, waiter, now_ms))
            self.schedule_turn()
            return None
        if res is None:
            self.schedule_turn()
        return res

    def _append(self, msg: Append, waiter: Hashable, now_ms: int) -> PartitionResult | None:
        try:
            return self.part.append(msg, waiter, now_ms)
        except StorageError as exc:  # the log failed or closed under us
            return PartitionResult(ErrorCode.KAFKA_STORAGE_ERROR, -1, self.log.start_offset,
                                   str(exc))

    def _drain_backlog(self) -> None:
        """Append what waited for the batcher's memory, in order, while it takes them."""
        while self._backlog:
            msg, waiter, now_ms = self._backlog[0]
            res = self._append(msg, waiter, now_ms)
            if res is FULL:
                return
            self._backlog.popleft()
            if res is not None:
                self._on_answer(waiter, res)

    def when_ready(self) -> bool | LoopFuture[bool]:
        """True, or a future set, once the partition serves (an entry of its term committed)."""
        if self.part.is_ready_leader():
            return True
        fut: LoopFuture[bool] = LoopFuture(self.loop)
        self._ready.append(fut)
        return fut

    def fail_waiting(self, failure: PartitionResult) -> None:
        while self._backlog:
            self._on_answer(self._backlog.popleft()[1], failure)
        self.part.fail_waiting(failure)
        self.turn()

    def stop(self) -> None:
        self._generation += 1  # flushes still running report to no one
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        for f in self._ready:
            f.fail(pykka.ActorDeadError("partition host stopped"))
        self._ready = []
        # Produces still waiting get an answer (a retry goes to wherever the partition is
        # next), never silence: an acks=all batch may still become durable, as after any
        # NOT_LEADER_OR_FOLLOWER (idempotent producers are deduplicated).
        gone = PartitionResult(ErrorCode.NOT_LEADER_OR_FOLLOWER, -1, -1, "partition stopped")
        while self._backlog:
            self._on_answer(self._backlog.popleft()[1], gone)
        self.part.fail_waiting(gone)
        for waiter, result in self.part.take_answers():
            self._on_answer(waiter, result)

    # ---- the loop turn ----------------------------------------------------------------------

    def schedule_turn(self) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            self.loop.call_soon(self.turn)

    def turn(self) -> None:
        """Do what the partition asks: answers, the high watermark, a flush."""
        self._turn_scheduled = False
        io = self.part.take_io()
        if io.send and self.replicas is not None:
            self.replicas.send(io.send)
        for waiter, result in io.answers:
            self._on_answer(waiter, result)
        if io.high_watermark is not None:
            self._on_high_watermark(io.high_watermark)
        if self._ready and self.part.is_ready_leader():
            for f in self._ready:
                f.set(True)
            self._ready = []
        if (self._on_leader is not None and self.part.term != self._announced_term
                and self.part.is_ready_leader()):
            self._announced_term = self.part.term
            self._on_leader(self._announced_term)
        for load in io.load:
            self._load(load)
        if self._backlog:
            # This turn's Ready wrote what held the memory (handed off): append what waited;
            # the next turn writes it and frees the memory for the rest.
            waiting = len(self._backlog)
            self._drain_backlog()
            if len(self._backlog) < waiting:
                self.schedule_turn()
        self._flush_owed |= io.start_flush
        if not self.paused:
            if self._flush_owed and not self.flushing:
                self.flush()
            elif self.flushing:
                self._flush_ahead()

    def _flush_ahead(self) -> None:
        """Raft flushes one at a time, but the disk need not wait: while one runs, ask the
        core's next round to write what was appended since, so the next flush finds it
        durable (or rides that round) instead of waiting a loop trip plus a round. Never while
        the kvstore holds writes: it must be durable before the batches after them."""
        if self.kv.dirty_offset > self.kv.flushed_offset:
            return
        offset = self.log.dirty_offset
        if offset <= max(self.log.flushed_offset, self._flushing_to) or (
                self._ahead is not None and self._ahead[0] >= offset):
            return  # nothing appended past what a flush asked for already covers
        self._ahead = (offset, self.coordinator.request(self.log, offset))
        if self.coordinator.claim_kick():
            self.writer.tell(RunRound())

    def _load(self, load: EntryLoad) -> None:
        """Raft entries a lagging follower needs that are no longer in memory: read them on
        the disk writer's thread, step them back in on the loop (never a disk read here). A
        failed read steps in nothing: Raft asks again at the follower's next heartbeat."""
        gen, log = self._generation, self.log
        fut: LoopFuture[Loaded] = self.writer.ask(  # type: ignore[assignment]
            Blocking(functools.partial(load.read, log)), block=False)

        def done(f: LoopFuture[Loaded]) -> None:
            if gen != self._generation:
                return  # the partition was reopened meanwhile
            self.part.entries_loaded(Loaded([]) if f.exception() is not None else f.result())
            self.schedule_turn()

        fut.add_done_callback(done)

    def flush(self) -> None:
        """One flush of the partition's kvstore (if written) and log in the core's next round
        of fdatasyncs; then `flush_done` and a turn, or `on_flush_failed`."""
        if self.flushing:
            return
        self._flush_owed = False
        if (self.log.flushed_offset >= self.log.dirty_offset
                and self.kv.dirty_offset <= self.kv.flushed_offset):
            # Already durable: batches appended after the last flush began were taken by its
            # fdatasync (Log.flush writes everything appended until it runs), and the kvstore
            # holds nothing unwritten. Raft hears it now, not one more round later.
            self.part.flush_begin()
            self.part.flush_done()
            self.schedule_turn()
            return
        self.flushing = True
        self.part.flush_begin()
        ahead, self._ahead = self._ahead, None
        self._flushing_to = self.log.dirty_offset
        targets: list[tuple[Log | KvStore, int]] = [(self.log, self.log.dirty_offset)]
        # The kvstore first whenever it holds writes (not only the partition's own): the log's
        # flush covers every batch appended so far, and a batch durable without the no-op or
        # configuration entry before it would take that entry's Raft index at recovery. (A
        # kvstore write made between the two fdatasyncs of one round still races: see
        # cluster/partition/README.md.)
        if self.part.kv_dirty or self.kv.dirty_offset > self.kv.flushed_offset:
            self.part.kv_flushing()
            targets.insert(0, (self.kv, self.kv.dirty_offset))
        left = [len(targets)]
        errors: list[BaseException] = []
        gen, cuts = self._generation, self.part.cuts

        def on_loop(handle: FlushHandle) -> None:
            if gen != self._generation:
                return  # a flush of the partition hosted before a reopen
            if handle.error is not None or handle.result is None:
                errors.append(handle.error or RuntimeError("flush failed"))
            left[0] -= 1
            if left[0] == 0:
                self._flushed(errors[0] if errors else None, truncated=self.part.cuts != cuts)

        def from_writer(handle: FlushHandle) -> None:  # runs on the disk-writer thread
            self.loop.call_soon_threadsafe(on_loop, handle)

        for target, offset in targets:
            if target is self.log and ahead is not None and ahead[0] >= offset \
                    and not ahead[1].error:
                ahead[1].add_done_callback(from_writer)  # the flush ahead covers it
            else:
                self.coordinator.request(target, offset, from_writer)
        if self.coordinator.claim_kick():  # else a round already asked for will take it
            self.writer.tell(RunRound())

    def _flushed(self, error: BaseException | None, truncated: bool = False) -> None:
        """`truncated`: the log was cut (a conflicting suffix) while the flush was on its way,
        so it may have found less than it asked for (`flush reached N`) without any disk
        fault: it is retried, as Raft's flush, instead of failing the partition. A real write
        error is retried once more that way, and fails the next flush as usual (an fdatasync
        failure marks the log or kvstore failed: never retried here)."""
        self.flushing = False
        if error is not None and truncated and not self.failed:
            _logger.info("flush_retried_after_truncation", error=str(error),
                         dirty_offset=self.log.dirty_offset)
            self.part.flush_retry()
        elif error is not None:
            self.part.flush_failed(PartitionResult(
                ErrorCode.KAFKA_STORAGE_ERROR, -1, self.log.start_offset, str(error)))
            self._on_flush_failed(error)
        else:
            self.part.flush_done()
            if self._on_flushed is not None:
                self._on_flushed()
        self.turn()

    @property
    def failed(self) -> bool:
        """The log or the kvstore failed an fdatasync: only a reopen recovers it."""
        return self.log.failed or self.kv.failed
