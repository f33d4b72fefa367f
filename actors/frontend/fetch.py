"""Fetch (1): the long-poll request path over the partitions' owners and the watermark board.

Concern: the I/O of one fetch on the core that received it: its fetch session (KIP-227), the
reads its `FetchOperation` asks for (from the owner, or for a remote partition from the
watermark board when it holds the answer), arming the board when a remote read found nothing
new (`Watermarks.arming_core`, the leader's rule too), and parking on the board until a
partition moves or `max_wait_ms` is up. Must not know: when a fetch has enough, what to read
next, the budget (`cluster/kafka/fetch_op`, `cluster/kafka/handlers/fetch`), how a leader reads
its log.
"""

from __future__ import annotations

import asyncio

from redshank.actors.frontend._registry import serves
from redshank.actors.frontend.services import READ_OWNER_GONE, CoreServices
from redshank.actors.watermarks import Watermarks
from redshank.cluster.kafka import TopicPartition
from redshank.cluster.kafka.fetch_op import FetchOperation
from redshank.cluster.kafka.fetch_session import SessionError
from redshank.cluster.kafka.handlers import fetch as fetch_h
from redshank.cluster.kafka.handlers import not_leader_if_unsure
from redshank.cluster.partition.api import READ_COMMITTED, Read, ReadResult
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.fetch import FetchRequest, FetchResponse

__all__ = ["MAX_REMOTE_READ", "fetch"]

# The most one read of a partition on another core returns: its reply crosses a shared-memory
# ring, and must stay well inside one frame.
MAX_REMOTE_READ = 1024 * 1024


def _not_leader(_tp: TopicPartition) -> ReadResult:
    return ReadResult(ErrorCode.NOT_LEADER_OR_FOLLOWER)


def _epoch_unsure(core: CoreServices, r: fetch_h.PartitionRead) -> bool:
    """Whether the fetch names a leader epoch other than the one this core's leaders table
    knows: then only the partition's owner may answer (FENCED_LEADER_EPOCH or
    UNKNOWN_LEADER_EPOCH, or the data if the table is behind)."""
    return r.leader_epoch > 0 and r.leader_epoch != core.leaders.epoch(r.tp, r.topic_id)


@serves(ApiKey.FETCH)
async def fetch(core: CoreServices, request: FetchRequest, version: int) -> FetchResponse:
    del version  # the session and the budget read every version's fields alike
    now = core.loop.time
    ctx = core.fetch_sessions.context(request, now())
    if isinstance(ctx, SessionError):
        return fetch_h.session_error(ctx.error_code)
    infos, unsure = await core.topic_infos(list({p.tp.topic for p in ctx.partitions}))
    reads, results = fetch_h.plan(ctx.partitions, infos, core.config.fetch_partition_max_bytes,
                                  request.isolation_level)
    not_leader_if_unsure(results, unsure, _not_leader)
    op = FetchOperation(request, reads, results, now() + max(request.max_wait_ms, 0) / 1000)
    while True:
        todo = op.start_round()
        if op.together:
            # What the watermark board answers is read here, in order; only the reads that
            # wait for an owner run as tasks (one task per partition per round was most of
            # a fetch's cost when a consumer's fetches each wake for one new batch).
            rest = [r for r in todo if not _read_from_board(core, op, r)]
            if len(rest) == 1:
                await _read(core, op, rest[0], board=False)
            elif rest:
                await asyncio.gather(*(_read(core, op, r, board=False) for r in rest))
        else:
            for r in todo:
                await _read(core, op, r)
        left = op.finish_round(now())
        if left is None:
            return op.response(ctx, now())
        # Parked on this core's watermark watch (the reads subscribed it to every partition).
        await core.watermarks.wait_any(op.parked_on(), left)
        op.moved(core.watermarks.known)


async def _read(core: CoreServices, op: FetchOperation, r: fetch_h.PartitionRead,
                board: bool = True) -> None:
    """`board=False`: the board was asked already (`_read_from_board`), and had no answer."""
    limit = op.limit(r)
    res = _from_board(core, r, limit) if board and r.core != core.router.core else None
    if res is None:
        res = await _read_partition(core, r, limit)
    op.on_result(r, res)


def _read_from_board(core: CoreServices, op: FetchOperation, r: fetch_h.PartitionRead
                     ) -> bool:
    """`_read` of a remote partition whose answer the board holds, done now; False: `r` is
    local or the board has no answer (asking it again would find none either)."""
    if r.core == core.router.core:
        return False
    res = _from_board(core, r, op.limit(r))
    if res is None:
        return False
    op.on_result(r, res)
    return True


def _from_board(core: CoreServices, r: fetch_h.PartitionRead, limit: int) -> ReadResult | None:
    """A remote partition's answer without a round trip to its core, when the watermark
    board has it: the batches its leader pushed after our last read armed it, or, while it
    stays armed at this offset, nothing new (see watermarks.py)."""
    if r.topic_id is None or limit <= 0 or _epoch_unsure(core, r):
        return None
    board = core.watermarks
    committed = r.isolation == READ_COMMITTED
    pushed = board.take(r.tp, r.offset, r.topic_id)
    if pushed is not None and (pushed.stable or not committed):
        # A stable push: its last stable offset is its high watermark (reported as such) and
        # no aborted transaction overlaps it.
        return ReadResult(0, pushed.high_watermark, pushed.log_start_offset,
                          fetch_h.clip(pushed.records, limit))
    if committed and pushed is not None:
        # Otherwise read_committed asks the leader: the board knows the high watermark, not
        # the last stable offset nor the aborted transactions.
        return None
    start = board.armed(r.tp, r.offset, r.topic_id,
                        core.router.transport.generation(r.core), core.loop.time(), committed)
    if start is None:
        return None
    return ReadResult(0, board.known.get(r.tp, r.offset), start, b"")


async def _read_partition(core: CoreServices, r: fetch_h.PartitionRead, limit: int
                          ) -> ReadResult:
    remote = r.core != core.router.core
    # The reply crosses a shared-memory ring: keep it well inside one frame.
    limit = min(limit, MAX_REMOTE_READ) if remote else limit
    generation = core.router.transport.generation(r.core) if remote else 0
    read = Read(r.offset, limit, r.leader_epoch, remote, core.router.core, r.isolation)
    res = await core.ask_partition(r.tp, r.core, read)
    if res is READ_OWNER_GONE:
        return res
    board = core.watermarks
    board.read(r.tp, res.high_watermark)
    if r.topic_id is not None and Watermarks.arming_core(read, res) is not None:
        # The leader armed for this core (the same rule): until it pushes, fetches at this
        # offset are answered from the board.
        board.arm(r.tp, r.offset, r.topic_id, generation, res.log_start_offset, core.loop.time(),
                  res.last_stable_offset >= res.high_watermark)
    return res
