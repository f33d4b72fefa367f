"""A transform instance: one deployment's user class running next to one input partition.

Concern: the instance's loop, on the core that leads its input partition:

    resume   OffsetFetch(__transform.NAME) -> the next input offset (none: the log start)
    read     Read(offset, READ_BYTES) from the partition leader (committed batches only:
             below the high watermark); nothing new: WaitForData long-poll (1 s)
    process  the user's `process` per record (decoded lazily), in slices of at most
             SLICE_S of `process` time, the loop served between two slices; one that raises
             is retried from that record with backoff (0.1 s doubling to 5 s), the instance
             `failing`
    produce  the outputs, encoded into their partitions' batches as `process` returns them
             (`transform_output`), through the Produce path's entry for broker-built
             batches (`produce_built`: acks=all, the same appends, no record walk), flushed
             every OUTPUT_FLUSH_BYTES, pipelined: a flush is enqueued at the partitions'
             owners in order, then acknowledged in a task while the instance processes on
             (at most MAX_IN_FLIGHT = 4 flushes unanswered); idempotent (see `_flush`)
    commit   OffsetCommit(next offset, status as metadata) once every output before it is
             acknowledged, i.e. durable (at-least-once), in a task after those flushes (at
             most MAX_IN_FLIGHT pending); the next chunk is read and processed meanwhile;
             at most every COMMIT_EVERY_S (0.1 s): the offset reached by then

Cluster mode (the input a controller topic, `wire` given): the instance runs on the core whose
replica leads the input partition. Its reads are that replica's, below the high watermark,
which there covers the majority-replicated entries only. A read answered
NOT_LEADER_OR_FOLLOWER means leadership moved: the instance stops reading and asks its manager
to reconcile (it is stopped; the new leader's manager has started, or starts, the successor,
which resumes from the committed offset: at-least-once across the move, the records after the
last commit processed again). Output partitions and the group's coordinator may be on other
nodes: what the core's own paths answer NOT_LEADER_OR_FOLLOWER / NOT_COORDINATOR goes over
Kafka's wire to the leader / coordinator (`transform_client`), retried with backoff while
leadership moves.

A slow `process`: the records of a chunk run in slices (SLICE_S of `process` time), then the
instance yields to its core's loop (`asyncio.sleep(0)`), so a request of another partition of
this core waits at most about one slice, not the whole chunk.

Transactional input is read as read_committed (KIP-98): below the last stable offset, and the
records of aborted transactions skipped (`records_of` with the read's `aborted` list; control
batches are never handed to `process`). While a transaction is open the read stops at its
first offset; the instance then waits for the high watermark to move past what it was (a
marker or more data), not for it to pass the instance's offset, which it already has.

The instance pulls at its own pace, so a slow transform only falls behind (its lag grows); the
producers of the input never wait for it. Memory per instance: one input chunk (at most
READ_BYTES = 1 MiB, or one batch larger than that, as Fetch serves it), the decompressed
records of one batch of it at a time, and at most (MAX_IN_FLIGHT + 1) x OUTPUT_FLUSH_BYTES =
5 MiB of output not yet acknowledged (four flushes in flight and the one being built, each
plus one record's outputs).

Lives on the core of its input partition; created and stopped by that core's transform
manager (`transform_manager`). Must not know: where deployments are stored, other partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pykka
import structlog

from redshank.actors._async import resolve
from redshank.actors.embed.transform import (
    InputRecord,
    Output,
    Transform,
    TransformContext,
    records_of,
)
from redshank.actors.frontend import groups as groups_fe
from redshank.actors.frontend import produce as produce_fe
from redshank.actors.frontend.services import CoreServices
from redshank.actors.frontend.topics import allocate_producer_id
from redshank.actors.partition_leader import partition_name
from redshank.actors.runtime import CoreDiedError, LoopActor
from redshank.actors.transform_client import WireClient
from redshank.actors.transform_output import OutputSequencer, PendingOutput
from redshank.actors.transform_spec import (
    HEARTBEAT_S,
    OUTPUT_FLUSH_BYTES,
    READ_BYTES,
    STATUS_EVERY_S,
    Deployment,
    Status,
    backoff,
    group_of,
)
from redshank.cluster.kafka import TopicPartition
from redshank.cluster.partition.api import READ_COMMITTED, Read, WaitForData
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import offset_commit as oc
from redshank.protocol.messages import offset_fetch as of
from redshank.protocol.messages import produce as pm
from redshank.protocol.record_batch import iter_batches

__all__ = ["Describe", "Refresh", "TransformInstance", "instance_name"]

WAIT_MS = 1000
# Encoded output batches, each with its (topic, partition).
Batches = list[tuple[tuple[str, int], memoryview]]
PRODUCE_TIMEOUT_MS = 30_000
_COMMIT_VERSION = 8
_FETCH_VERSION = 7
# The most `process` time between two turns of the core's loop.
SLICE_S = 0.002
# Output flushes sent and not yet acknowledged (and offset commits pending), per instance.
# Measured (identity transform, 50k x 1 KiB backlog, 2 cores, 4 partitions): with 2 the
# instance mostly waited for acks=all (cores about 25% busy, 72-82k records/s), with 4 or 8
# 85-153k records/s at the same CPU per record; 4 keeps the memory bound lower.
MAX_IN_FLIGHT = 4
# The most often an instance commits its input offset (Redpanda's data transforms commit every
# data_transforms_commit_interval_ms, 3 s by default). A commit is an OffsetCommit through the
# group coordinator, a write and an fsync of __consumer_offsets: one per chunk made a transform
# fed 1k records/s (chunks of one record) commit 1k times a second, on the core of its input,
# which then served that input's producers and consumers late (bench transform, steady phase).
# The price: after a crash, up to this much more input is processed again (at-least-once).
COMMIT_EVERY_S = 0.1
# Local answers that mean: another node leads / coordinates (cluster mode: ask it by wire).
_ELSEWHERE = (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
_NOT_HERE = (ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE)


class OutputSequenceLost(Exception):
    """A batch produced again, after every earlier one of its partition was acknowledged, was
    refused as out of sequence: the partition no longer holds what this producer wrote (its
    log truncated or its producer state gone). Not recoverable by retrying: the instance
    starts over from its committed offset at a new epoch."""


def instance_name(name: str, partition: int) -> str:
    return f"transform/{name}/{partition}"


class Refresh:
    """To the transform manager: read the deployments and reconcile now (not at its next
    round); told by an instance whose input is no longer led here."""


class Describe:
    """-> the instance's report: {"name", "partition", "core", "state", "offset" (the next
    input offset), "processed", "failed", "error"}."""


class TransformInstance(LoopActor):
    """Runs `dep`'s class over input partition `partition` from its committed offset. Lives on
    core `core.ctx.core` (the partition's); started by the transform manager, ended by it (the
    deployment deleted or changed, the partition no longer led here) or by the core's stop."""

    def __init__(self, core: CoreServices, dep: Deployment, cls: type[Transform] | None,
                 partition: int, load_error: str | None = None,
                 wire: WireClient | None = None, manager: pykka.ActorRef[Any] | None = None
                 ) -> None:
        """`wire`: cluster mode's client for other nodes' leaders and coordinators;
        `manager`: told `Refresh` when the input partition is no longer led here."""
        super().__init__()
        self.core = core
        self.wire = wire
        self.manager = manager
        self.moved = False  # the input's leadership left this replica: nothing more is read
        self.dep = dep
        self.cls = cls
        self.partition = partition
        self.tp = TopicPartition(dep.input, partition)
        self.group = group_of(dep.name)
        self.offset = -1  # the next input offset to process (-1: not resumed yet)
        self.committed = -1
        self.processed = 0
        self.failed = 0
        self.error: str | None = load_error
        self.state = "failing" if load_error else "running"
        self._reported: tuple[str, int, str | None] = ("", -1, None)
        self._reported_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._commit: asyncio.Task[bool] | None = None  # the last one
        self._commits: deque[asyncio.Task[bool]] = deque()  # pending, oldest first
        self._inflight: deque[asyncio.Task[None]] = deque()  # output flushes, oldest first
        self._last_flush: asyncio.Task[None] | None = None  # the newest, done or not
        self._commit_timer: asyncio.TimerHandle | None = None  # the next commit, when due
        self._commit_at = 0.0  # monotonic time the next commit may start
        self._commit_to = -1  # the offset the last commit started commits
        self._seq: OutputSequencer | None = None  # the output's producer id, epoch, sequences
        self._log = structlog.get_logger("redshank.transforms").bind(
            transform=dep.name, ntp=f"{dep.input}/{partition}", core=core.ctx.core)

    # -- actor -----------------------------------------------------------------------------------
    def on_start(self) -> None:
        self._task = self.core.loop.create_task(self._run())

    def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._cancel_pending()
        # No last report: a late commit could undo a successor's (a redeployment's). Without
        # reports, `transform list` shows the instance stopped after a few heartbeats.

    def _cancel_pending(self) -> None:
        if self._commit_timer is not None:
            self._commit_timer.cancel()
            self._commit_timer = None
        self._commit_to = -1
        for task in (*self._inflight, *self._commits):
            task.cancel()
        self._inflight.clear()
        self._commits.clear()
        self._commit = None
        self._last_flush = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Describe):
            return {"name": self.dep.name, "partition": self.partition,
                    "core": self.core.ctx.core, "state": self.state, "offset": self.offset,
                    "processed": self.processed, "failed": self.failed, "error": self.error}
        raise TypeError(f"transform instance got {type(message).__name__}")

    @property
    def actor_status(self) -> str:
        """What `redshank actors` shows for the instance."""
        if self.state == "failing":
            return f"failing ({self.failed} failed): {self.error}"
        return f"{self.state}: offset {self.offset}, {self.processed} processed"

    # -- the loop --------------------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                self.offset = await self._resume()
                await self._new_producer()
                if self.cls is None:
                    self._log.error("transform_load_failed", error=self.error)
                    while True:  # shown failing until the deployment is replaced or deleted
                        await self._report()
                        await asyncio.sleep(HEARTBEAT_S)
                user = await self._setup(self.cls)
                self._log.info("transform_started", offset=self.offset)
                while True:
                    await self._step(user)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here: shown and started over, never the core's
                attempt += 1
                self._cancel_pending()  # from the committed offset again
                self._log.exception("transform_instance_failed")
                await self._failed(f"instance restarted: {exc!r}", attempt)

    async def _new_producer(self) -> None:
        """The output's producer for this run from the committed offset: the instance's first
        run allocates a producer id (as InitProducerId does, from the node's block); each run
        after it (the instance started over) takes the next epoch, so what the last run still
        had in flight is refused (INVALID_PRODUCER_EPOCH) once the new epoch has written to a
        partition, and sequences start at 0 again."""
        if self._seq is not None and self._seq.new_epoch():
            return
        attempt = 0
        while True:
            pid = await allocate_producer_id(self.core)
            if pid is not None:
                self._seq = OutputSequencer(pid)
                return
            attempt += 1
            await asyncio.sleep(backoff(attempt))

    async def _setup(self, cls: type[Transform]) -> Transform:
        """A new instance of the user's class, set up; retried with backoff until it is."""
        ctx = TransformContext(self.dep.name, self.dep.input, self.partition, self.dep.outputs)
        attempt = 0
        while True:
            try:
                user = cls()
                user.setup(ctx)
                if attempt:
                    self._recovered()
                return user
            except Exception as exc:
                attempt += 1
                await self._failed(f"setup: {exc!r}", attempt)

    async def _resume(self) -> int:
        attempt = 0
        while True:
            found = await self._fetch_committed()
            if found is not None:
                self.committed = found
                return found
            attempt += 1
            await asyncio.sleep(backoff(attempt))

    async def _fetch_committed(self) -> int | None:
        """The committed offset (0 when none: from the log start), None if not known now."""
        req = of.OffsetFetchRequest(group_id=self.group, topics=(
            of.OffsetFetchRequestTopic(self.dep.input, (self.partition,)),))
        resp: of.OffsetFetchResponse | None = None
        with contextlib.suppress(pykka.ActorDeadError, CoreDiedError, TimeoutError):
            resp = await groups_fe.offset_fetch(self.core, req, _FETCH_VERSION)
        if self.wire is not None and (resp is None or resp.error_code in _NOT_HERE):
            resp = await self.wire.offset_fetch(req)  # coordinated by another node
        if resp is None or resp.error_code != ErrorCode.NONE:
            return None
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code != ErrorCode.NONE:
                    return None
                last = Status.decode(p.metadata)
                if last is not None and self.committed < 0:  # counts go on from the last report
                    self.processed, self.failed = last.processed, last.failed
                return max(p.committed_offset, 0)
        return 0

    async def _step(self, user: Transform) -> None:
        owner = self.core.ctx.core
        res = await self.core.ask_partition(self.tp, owner,
                                            Read(self.offset, READ_BYTES, -1, False,
                                                 isolation=READ_COMMITTED))
        if res.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
            # Below the log start: retention removed what was never processed (or a new
            # deployment starts there). Above the log end: the topic was recreated. Either
            # way, from the log start (Kafka's auto.offset.reset=earliest), loudly.
            self._log.warning("transform_offset_reset", to=res.log_start_offset,
                              offset=self.offset, high_watermark=res.high_watermark)
            self.offset = max(res.log_start_offset, 0)
            return
        if res.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER and self.wire is not None:
            await self._moved()
            return
        if res.error_code != ErrorCode.NONE:
            await asyncio.sleep(backoff(1))
            return
        if self.moved:  # led here again before the manager stopped it: from the commit
            self.moved = False
            self.state = "running"
            self.offset = await self._resume()
            return
        if not res.records:
            await self._report()
            # Caught up (the high watermark is our offset), or held at the last stable offset
            # by an open transaction (the high watermark is past it): wait for it to move on.
            await self._wait(owner, max(self.offset, res.high_watermark))
            return
        # A copy: the records are decoded lazily, after the leader may have reused its cache.
        data = bytes(res.records)
        end = self.offset
        for _pos, header in iter_batches(data, verify_crc=False):
            end = max(end, header.last_offset + 1)
        # One batch decompressed at a time, its records decoded as `process` reads them.
        await self._process(user, records_of(self.dep.input, self.partition, data, self.offset,
                                             res.aborted))
        del data, res
        self.offset = end
        # At most MAX_IN_FLIGHT commits pending; meanwhile the next chunk is read and processed.
        while len(self._commits) >= MAX_IN_FLIGHT:
            await self._commits.popleft()
        self._commit_soon()

    def _commit_soon(self) -> None:
        """Commit `self.offset` now, or at COMMIT_EVERY_S after the last commit started (the
        offset reached by then; `_commit_due`)."""
        # (`!=`: an offset reset to the log start, the topic recreated, is committed too)
        if self._commit_timer is not None or self.offset == self._commit_to:
            return
        delay = self._commit_at - time.monotonic()
        if delay > 0:
            self._commit_timer = self.core.loop.call_later(delay, self._commit_due)
        else:
            self._commit_due()

    def _commit_due(self) -> None:
        """Start the commit of `self.offset`: once every output before it is acknowledged, i.e.
        after the flushes in flight now (the last chunk's last ones, perhaps some of the chunk
        being processed: waited for too) and after the previous commit."""
        self._commit_timer = None
        if self.offset == self._commit_to:
            return
        self._commit_to = self.offset
        self._commit_at = time.monotonic() + COMMIT_EVERY_S
        self._commit = self.core.loop.create_task(
            self._commit_after(tuple(self._inflight), self._commit, self.offset))
        self._commits.append(self._commit)

    async def _commit_after(self, flushes: tuple[asyncio.Task[None], ...],
                            previous: asyncio.Task[bool] | None, offset: int) -> bool:
        for flush in flushes:
            await flush
        if previous is not None:
            await previous
        return await self._commit_offset(offset)

    async def _moved(self) -> None:
        """Leadership of the input left this replica: stop (the manager stops this actor;
        the successor on the new leader resumes from the committed offset)."""
        if not self.moved:
            self.moved = True
            self.state = "moved"
            self._log.info("transform_input_moved", offset=self.offset,
                           committed=self.committed)
            if self.manager is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    self.manager.tell(Refresh())
        await asyncio.sleep(backoff(3))

    async def _wait(self, owner: int, offset: int) -> None:
        """Until the high watermark passes `offset` (or WAIT_MS)."""
        name = partition_name(self.dep.input, self.partition)
        try:
            await resolve(self.core.router.ref(owner, name).ask(
                WaitForData(offset, WAIT_MS), block=False))
        except (pykka.ActorDeadError, CoreDiedError):
            await asyncio.sleep(backoff(1))

    async def _process(self, user: Transform, records: Iterator[InputRecord]) -> None:
        """Every record through `process`, in order; one that raises is retried (alone: the
        outputs of the records before it stand) until it passes. The outputs are encoded as
        they come (`PendingOutput`) and flushed every OUTPUT_FLUSH_BYTES without waiting for
        the answer (`_flush`)."""
        buf = PendingOutput(self.dep.outputs, await self._counts(), int(time.time() * 1000))
        add = buf.add
        process = user.process
        partition = self.partition
        clock = time.perf_counter
        slice_end = clock() + SLICE_S
        done = 0  # processed since `self.processed` was last updated (before each await)
        for record in records:
            attempt = 0
            while True:
                if clock() >= slice_end:  # this core's other work goes first, then on
                    self.processed += done
                    done = 0
                    await asyncio.sleep(0)
                    slice_end = clock() + SLICE_S
                try:  # checked before anything is added: a failure adds nothing
                    add(partition, process(record))
                    break
                except Exception as exc:
                    attempt += 1
                    self.failed += 1
                    self.processed += done
                    done = 0
                    await self._failed(f"offset {record.offset}: {exc!r}", attempt)
            if attempt:
                self._recovered()
            done += 1
            if buf.size >= OUTPUT_FLUSH_BYTES:
                self.processed += done
                done = 0
                await self._flush(buf)
        self.processed += done
        await self._flush(buf)

    async def _counts(self) -> dict[str, int | None]:
        """Each output topic's partition count (None: not found), from the core's cache."""
        infos, _unsure = await self.core.topic_infos(list(self.dep.outputs))
        return {t: None if info is None else info.partitions for t, info in infos.items()}

    async def _failed(self, error: str, attempt: int) -> None:
        if self.state != "failing":
            self._log.warning("transform_failing", error=error)
        self.state = "failing"
        self.error = error
        await self._report()
        await asyncio.sleep(backoff(attempt))

    def _recovered(self) -> None:
        if self.state == "failing":
            self._log.info("transform_recovered", failed=self.failed)
        self.state = "running"

    # -- output ----------------------------------------------------------------------------------
    # Pipelined: a flush's appends are enqueued at their owners in order (phase 1 of the
    # produce path, awaited here), then its acknowledgement (acks=all: durable) and any retry
    # run in a task while the instance goes on; at most MAX_IN_FLIGHT flushes unanswered.
    #
    # Idempotent, as a client's idempotent producer with several requests in flight (KIP-98):
    # each batch carries the instance's producer id, epoch and its partition's next sequence
    # (`OutputSequencer`). When flush k's batch to a partition fails (not appended), flush
    # k+1's to it is refused OUT_OF_ORDER_SEQUENCE_NUMBER rather than appended after the gap;
    # a flush with failures first waits for the flush before it to be acknowledged (its own
    # retries done), then produces its failed batches again, the same bytes: in sequence now,
    # or, when the first attempt was in fact written (an answer lost), answered as a
    # duplicate without writing it twice. So each partition's output keeps its order and
    # holds each batch once. Two cases hold the pipeline back for one flush's answer: a
    # partition's first batch at an epoch (the table takes an unknown epoch at any sequence,
    # so a later batch must not overtake it) and outputs of topics not found (looked up and
    # sequenced when the topic exists, which must come before the next flush's).
    #
    #   flush k   P: seq 10-19  --X (NOT_LEADER)              ...retry 10-19 -> appended
    #   flush k+1 P: seq 20-29  --> OUT_OF_ORDER (expects 10) ...waits for k, retry -> appended
    async def _flush(self, buf: PendingOutput) -> None:
        if not buf.size:
            return
        seq = self._seq
        assert seq is not None  # set before the first record is processed
        batches, unknown = buf.take(seq)
        while len(self._inflight) >= MAX_IN_FLIGHT:
            await self._inflight.popleft()
        sent = [(r, await self._send_start(r)) for r in _rounds(batches)]
        task = self.core.loop.create_task(self._produce(sent, unknown, self._last_flush))
        self._inflight.append(task)
        self._last_flush = task
        if seq.take_opening() or unknown:
            await task

    async def _produce(self, sent: list[tuple[Batches, asyncio.Future[pm.ProduceResponse] | None]],
                       unknown: list[tuple[int, Output]],
                       previous: asyncio.Task[None] | None) -> None:
        """Every output acknowledged (acks=all): `sent`'s requests, enqueued already, then,
        with backoff and once `previous` (the flush before) is acknowledged, the partitions
        that failed and the outputs of topics not found."""
        attempt = 0
        pending = list(sent)
        retry: Batches = []
        while True:
            error: str | None = None
            if attempt and previous is not None:  # earlier sequences first
                await previous
                previous = None
            if unknown:  # looked up again: created meanwhile?
                again = PendingOutput(self.dep.outputs, await self._counts(),
                                      int(time.time() * 1000))
                for part, out in unknown:
                    again.put(part, out)
                found, unknown = again.take(self._seq)
                retry += found
                if unknown:
                    missing = {out.topic or self.dep.outputs[0] for _p, out in unknown}
                    error = f"output topic(s) {', '.join(sorted(missing))} not found"
            pending += [(r, None) for r in _rounds(retry)]
            retry = []
            for batches, fut in pending:
                if fut is None:
                    fut = await self._send_start(batches)
                codes = await self._send_finish(batches, fut)
                for (key, batch), code in zip(batches, codes, strict=True):
                    if code == ErrorCode.NONE:
                        continue
                    if (code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER and attempt
                            and all(k != key for k, _b in retry)):
                        raise OutputSequenceLost(f"produce to {key[0]}/{key[1]}: "
                                                 f"{_code_name(code)}")
                    error = f"produce to {key[0]}/{key[1]}: {_code_name(code)}"
                    retry.append((key, batch))
            pending = []
            if error is None:
                if attempt:
                    self._recovered()
                return
            attempt += 1
            self.failed += 1
            await self._failed(error, attempt)

    async def _send_start(self, batches: Batches
                          ) -> asyncio.Future[pm.ProduceResponse] | None:
        """Phase 1: the batches' appends in their owners' FIFOs; -> the response's future
        (None: the local path failed, every partition answered NOT_LEADER_OR_FOLLOWER)."""
        try:
            return await produce_fe.produce_built(self.core, _request(batches))
        except (pykka.ActorDeadError, CoreDiedError) as exc:
            self.error = repr(exc)
            return None

    async def _send_finish(self, batches: Batches,
                           sent: asyncio.Future[pm.ProduceResponse] | None) -> list[int]:
        """Phase 2: each batch's error code, once acknowledged; in cluster mode, those led by
        other nodes produced to them over the wire."""
        codes: dict[tuple[str, int], int] = {}
        if sent is not None:
            try:
                resp = await sent
                for t in resp.responses:
                    for p in t.partition_responses:
                        codes[(t.name, p.index)] = p.error_code
            except (pykka.ActorDeadError, CoreDiedError) as exc:
                self.error = repr(exc)
        if self.wire is not None:  # led by other nodes: to their leaders, over the wire
            elsewhere = [(key, batch) for key, batch in batches
                         if codes.get(key, ErrorCode.NOT_LEADER_OR_FOLLOWER) in _ELSEWHERE]
            answers = await asyncio.gather(*(
                self.wire.produce(topic, part, batch, PRODUCE_TIMEOUT_MS)
                for (topic, part), batch in elsewhere))
            codes.update(zip((key for key, _b in elsewhere), answers, strict=True))
        return [codes.get(key, ErrorCode.NOT_LEADER_OR_FOLLOWER) for key, _b in batches]

    # -- progress and status ---------------------------------------------------------------------
    async def _commit_offset(self, offset: int, force: bool = False) -> bool:
        """Commit `offset` with the status; retried with backoff until it is (True), or not
        retried when only reporting (`force`)."""
        attempt = 0
        while True:
            status = self._status()
            req = oc.OffsetCommitRequest(group_id=self.group, topics=(
                oc.OffsetCommitRequestTopic(self.dep.input, (oc.OffsetCommitRequestPartition(
                    self.partition, offset, committed_metadata=status.encode()),)),))
            code: int = ErrorCode.COORDINATOR_NOT_AVAILABLE
            with contextlib.suppress(pykka.ActorDeadError, CoreDiedError, TimeoutError):
                resp = await groups_fe.offset_commit(self.core, req, _COMMIT_VERSION)
                code = resp.topics[0].partitions[0].error_code if resp.topics else code
            if code in _NOT_HERE and self.wire is not None:  # coordinated by another node
                code = await self.wire.offset_commit(req)
            if code == ErrorCode.NONE:
                if attempt >= 3:
                    self._recovered()
                self.committed = max(self.committed, offset)
                self._reported = (self.state, self.processed, self.error)
                self._reported_at = time.monotonic()
                return True
            if force:
                return False
            attempt += 1
            if attempt == 3:  # shown (in `redshank actors`: the commit itself is what fails)
                self.state = "failing"
                self.error = f"offset commit: {_code_name(code)}"
                self._log.warning("transform_commit_failing", error=self.error)
            await asyncio.sleep(backoff(attempt))

    async def _report(self) -> None:
        """Commit the status again (the committed offset unchanged) when it changed, at most
        every STATUS_EVERY_S, and every HEARTBEAT_S regardless (`transform list` sees a
        report older than a few heartbeats as a stopped instance)."""
        # Not while a commit is pending or due (it carries the status; this one, of an older
        # offset, could land after it). `_step` awaits this: no commit is scheduled meanwhile.
        if self.committed < 0 or self._commit_timer is not None or (
                self._commit is not None and not self._commit.done()):
            return
        since = time.monotonic() - self._reported_at
        changed = self._reported != (self.state, self.processed, self.error)
        if (changed and since >= STATUS_EVERY_S) or since >= HEARTBEAT_S:
            await self._commit_offset(self.committed, force=True)

    def _status(self) -> Status:
        return Status(self.state, self.processed, self.failed, self.error,
                      int(time.time() * 1000), self.core.ctx.core, self.core.config.node_id)


def _rounds(batches: Batches) -> list[Batches]:
    """`batches` as requests of one batch per partition each (a request carries one per
    partition), in order: a partition's n-th batch goes in the n-th request."""
    rounds: list[Batches] = []
    seen: dict[tuple[str, int], int] = {}
    for key, batch in batches:
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append((key, batch))
    return rounds


def _request(batches: Batches) -> pm.ProduceRequest:
    by_topic: dict[str, list[pm.PartitionProduceData]] = {}
    for (topic, part), batch in batches:
        by_topic.setdefault(topic, []).append(pm.PartitionProduceData(part, batch))
    return pm.ProduceRequest(acks=-1, timeout_ms=PRODUCE_TIMEOUT_MS, topic_data=tuple(
        pm.TopicProduceData(t, tuple(parts)) for t, parts in by_topic.items()))


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"
