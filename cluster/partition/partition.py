"""One partition replica, sans-IO: Raft consensus over its storage log, the idempotent-producer
table, the max timestamp and the read bounds, in one state machine.

    host (partition-leader actor, or the simulator)        Partition
    ------------------------------------------------       ---------
    Append from a produce                             ->   append(msg, waiter) -> PartitionResult
                                                           | None (answered later through Io)
    tick timer                                        ->   tick()
    io.load: entries to read on the disk thread       ->   entries_loaded(entries)
    Raft message from a peer                          ->   step(message)
    io = take_io(): kv writes already made; send           Io: start_flush, send, answers,
      io.send, start a flush (kvstore then log) if          high watermark moved
      io.start_flush, deliver io.answers
    flush starts / done                               ->   flush_begin() / flush_done()

Raft is the only write path: a batch becomes visible (high watermark) once its entry commits,
i.e. is fsynced on a majority; with one replica (the degenerate case: elected at once, majority
= itself) that is this node's fsync. acks=0 and acks=1 are answered once the entry is appended
on the leader and written (the flush may still run); acks=all once committed. Raft's own entries
take no Kafka offset. Must not know sockets, threads, event loops or clocks (the host ticks).

Transactions (KIP-98) ride the same path: a transactional batch opens its producer's
transaction in the producer table; a COMMIT/ABORT marker (WriteTxnMarkers) is an `Append` of a
control batch, checked against the producer's epochs, taking one offset and ending the
transaction once appended (a follower does the same from the batches it is sent; a truncation
undoes it). `last_stable_offset` (min of the undecided transactions' first offsets and the
high watermark) bounds read_committed reads; `aborted` lists the aborted transactions a read
overlaps.

Leadership balance (Kafka's preferred replica, Redpanda's leader balancer reduced to it): a
replicated partition may name a `preferred` replica (the controller's first of the assignment,
placed so leaders spread evenly over nodes and cores). A brand-new group's preferred replica
campaigns at once instead of after an election timeout; a leader that is not the preferred one,
once it has served `balance_ticks` ticks, hands leadership over (Raft's transfer: the target must
have every entry first) whenever the preferred replica is caught up and was heard from lately.
So leaders go back to where placement put them after a failover, and never flap: only the
preferred replica is ever a transfer target, and it never transfers away.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import field

from redshank.cluster.kafka.producer_state import (
    Duplicate,
    ProducerStateTable,
    SequenceError,
    marker_of,
)
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.partition.raft_log import (
    ANCHOR_FLUSH_ENTRIES,
    EntryLoad,
    Loaded,
    PartitionRaftLog,
    RecoveredRaft,
)
from redshank.cluster.raft.consensus import Consensus
from redshank.cluster.raft.raft import RaftConfig, RaftCore
from redshank.cluster.raft.replicate_batcher import Acks, ReplicateRequest
from redshank.cluster.raft.replicate_entries_stm import ReplicateResult
from redshank.cluster.raft.types import (
    NO_NODE,
    Config,
    Entry,
    EntryKind,
    Index,
    Message,
    NodeId,
    Notice,
    Role,
)
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.errors import DecodeError
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import parse_header, stamp_log_append_time
from redshank.storage import KvStore, Log

__all__ = ["BALANCE_TICKS", "FULL", "Io", "Partition"]

# `append`'s answer while the replicate batcher's memory units are all taken (backpressure:
# Redpanda's batcher semaphore). Not an error for the producer: its host keeps the append, and
# every later one, and appends them in order once units return (after the next write).
FULL = PartitionResult(ErrorCode.NONE, -2, -2, "replicate batcher full")

SELF = NodeId(1)  # a single replica's node id until the cluster assigns real ones
# Ticks a leader serves before it hands leadership to the preferred replica (2 election
# timeouts at the default 10 ticks each): a new leader settles first, a returning node gets
# time to catch up, and a failing preferred node cannot make leadership bounce.
BALANCE_TICKS = 20
# Ticks a new group's preferred replica campaigns again while it knows no leader: the replicas
# of a new topic open on their nodes tens of milliseconds apart, and a first campaign that
# reached none of them would leave the lead to an election timeout (a non-preferred winner, and
# a transfer 20 ticks later). Prevote first, so a leader elected meanwhile is not disturbed.
EARLY_CAMPAIGN_TICKS = 5


@dataclass(slots=True)
class Io:
    """What the host must do after an input, in order."""

    send: list[Message] = field(default_factory=list)
    start_flush: bool = False  # flush the kvstore, then the log, then call flush_done
    answers: list[tuple[Hashable, PartitionResult]] = field(default_factory=list)
    high_watermark: int | None = None  # moved to this (visible to consumers)
    # Entries Raft could not hand out from memory (a lagging follower's): the host calls
    # `load.read(log)` where the disk may be read, then `entries_loaded` on the loop.
    load: list[EntryLoad] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)  # Raft's (leadership, commit), in order


class Partition:
    """One replica of one partition (loop thread of its host)."""

    def __init__(self, log: Log, kv: KvStore, recovered: RecoveredRaft,
                 producers: ProducerStateTable, *, voters: frozenset[NodeId] = frozenset({SELF}),
                 node: NodeId = SELF, seed: int = 0, bootstrap: Config | None = None,
                 raft: RaftConfig | None = None,
                 anchor_every: int = ANCHOR_FLUSH_ENTRIES, preferred: NodeId = NO_NODE,
                 balance_ticks: int = BALANCE_TICKS) -> None:
        """`bootstrap` (the group's first configuration, learners included) defaults to
        `voters`; `raft` (timeouts, prevote, priorities) to the defaults for `node`;
        `anchor_every`: entries between recovery anchors; `preferred`: the replica leadership
        goes back to (module docstring; NO_NODE: none), after `balance_ticks` ticks."""
        self.raft_log = PartitionRaftLog(log, kv, recovered, anchor_every)
        self.producers = producers
        cfg = raft or RaftConfig(id=node, rng=random.Random(seed))
        # The log is the state machine: committed entries need not be handed back.
        cfg.apply_entries = False
        core = RaftCore(cfg, self.raft_log, recovered.hard_state, bootstrap or Config(voters),
                        applied=recovered.hard_state.commit)
        self.consensus = Consensus(core, translator=self.raft_log.offsets)
        self.high_watermark = self._visible()
        self.max_timestamp: tuple[int, int] | None = None  # (timestamp, offset)
        self._pending: dict[int, Hashable] = {}  # replicate request id -> the host's waiter
        # Idempotent retries of batches not yet committed: (last offset, waiter, answer).
        self._duplicates: list[tuple[int, Hashable, PartitionResult]] = []
        self._next_id = 0
        self._io = Io()
        self._kv_dirty = False
        self.preferred = preferred  # the host may change it (the controller moved it)
        self.balance_ticks = balance_ticks
        self._led_ticks = 0  # ticks served as leader in this term, for the balance
        self._early_campaigns = 0  # ticks left to campaign again as a new group's preferred
        # How many times a conflicting suffix was cut from the log (the host tells a flush that
        # found its offset truncated away from a failed one).
        self.cuts = 0

    # ---- queries ----------------------------------------------------------------------------

    @property
    def log(self) -> Log:
        return self.raft_log.log

    @property
    def term(self) -> int:
        """The leader epoch this replica serves under."""
        return int(self.consensus.core.term)

    def is_ready_leader(self) -> bool:
        return self.consensus.high_watermark() is not None

    def serves(self) -> bool:
        """Whether this replica may answer Kafka reads now: it leads, and an entry of its term
        committed (cheap: no Ready is taken, unlike `is_ready_leader`)."""
        return self.consensus.core.leader_ready()

    def epoch_error(self, current_leader_epoch: int) -> int:
        """The error for a request naming `current_leader_epoch` (KIP-320): none for -1 (the
        client does not know it) or this term, FENCED_LEADER_EPOCH for an older one (the client
        missed a leader change), UNKNOWN_LEADER_EPOCH for a newer one (this replica did).
        Epoch 0 counts as unknown too: Raft terms start at 1, so it names no leader, and
        librdkafka sends 0 instead of -1 when it knows no epoch (to have it checked, for
        brokers with Metadata v9+), which would otherwise be fenced until Metadata knew one."""
        if current_leader_epoch <= 0 or current_leader_epoch == self.term:
            return ErrorCode.NONE
        if current_leader_epoch < self.term:
            return ErrorCode.FENCED_LEADER_EPOCH
        return ErrorCode.UNKNOWN_LEADER_EPOCH

    def epoch_end(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: the largest epoch at most `epoch` and where it ends (the next
        epoch's first offset, or the log end offset for the latest); (-1, -1) if unknown."""
        rl = self.raft_log
        return rl.epochs.end_of(epoch, int(rl.offsets.next_offset()))

    def last_stable_offset(self) -> int:
        """Below it every transaction is decided (KIP-98): what read_committed reads."""
        return self.producers.last_stable_offset(self.high_watermark)

    def aborted(self, fetch_offset: int, upper: int) -> tuple[tuple[int, int], ...]:
        """The aborted transactions a read_committed read of [fetch_offset, upper) overlaps
        ((producer id, first offset)); those ended below the log start went with it."""
        self.producers.trim(self.log.start_offset)
        return self.producers.aborted(fetch_offset, upper)

    def epoch_at(self, offset: int) -> int:
        """The leader epoch of the batch at `offset` (-1 before any)."""
        return self.raft_log.epochs.epoch_at(offset)

    def _visible(self, drained: bool = False) -> int:
        hw = self.consensus.high_watermark(drained=drained)
        return self.log.start_offset if hw is None else max(int(hw), self.log.start_offset)

    # ---- inputs -----------------------------------------------------------------------------

    def start(self) -> None:
        """A single replica elects itself at once (prevote and vote need only its own)."""
        core = self.consensus.core
        if core.config.voters == frozenset({core.id}) or (
                core.id == self.preferred and core.term == 0 and core.log.last_index() == 0):
            # A new group's preferred replica need not wait out an election timeout either:
            # the others vote for it if they are up (else the timeouts elect someone).
            core.campaign()
            if core.config.voters != frozenset({core.id}):
                self._early_campaigns = EARLY_CAMPAIGN_TICKS
        self._drain()

    def append(self, msg: Append, waiter: Hashable, now_ms: int = -1) -> PartitionResult | None:
        """Append one produce's batch (or a transaction marker's control batch). Answered now
        (errors, duplicates already committed) or later in `Io.answers` under `waiter`.
        `msg.records` must be a writable buffer the log
        may keep (offsets and leader epoch are rewritten in place); `now_ms` >= 0 stamps it
        with LogAppendTime. `FULL` (compare with `is`): not appended for lack of memory; append
        it again later, before any later append."""
        core = self.consensus.core
        start = self.log.start_offset
        if core.role != Role.LEADER:
            return PartitionResult(ErrorCode.NOT_LEADER_OR_FOLLOWER, -1, start)
        try:
            header = parse_header(msg.records)
            if now_ms >= 0:
                stamp_log_append_time(msg.records, 0, header, now_ms)  # type: ignore[arg-type]
        except DecodeError as exc:
            return PartitionResult(ErrorCode.CORRUPT_MESSAGE, -1, start, str(exc))
        marker = marker_of(msg.records, 0, header) if header.is_control else None
        if marker is not None:  # a WriteTxnMarkers append (clients' control batches are refused)
            refused = self.producers.check_marker(marker)
            if refused is not None:
                return PartitionResult(refused.error_code, -1, start, refused.message)
        producer = msg.producer
        if producer is not None:
            seen = self.producers.check(producer)
            if isinstance(seen, Duplicate):
                ok = PartitionResult(0, seen.base_offset, start)
                if seen.last_offset < self.high_watermark or msg.acks != -1:
                    return ok
                # The original is appended but not yet committed: answer with it, after it.
                self._duplicates.append((seen.last_offset, waiter, ok))
                return None
            if isinstance(seen, SequenceError):
                return PartitionResult(seen.error_code, -1, start, seen.message)
        self._next_id += 1
        rid = self._next_id
        acks = Acks.ALL if msg.acks == -1 else Acks.LEADER if msg.acks == 1 else Acks.NONE
        base = self.raft_log.offsets.next_offset()
        self._pending[rid] = waiter
        if not self.consensus.replicate(ReplicateRequest(rid, msg.records, acks)):
            del self._pending[rid]
            return FULL  # a leader's batcher is out of memory: the host retries it, in order
        # Appended (sequenced): a retry from here on is a duplicate of this batch.
        last = base + header.last_offset_delta
        ts = now_ms if now_ms >= 0 else header.max_timestamp
        if producer is not None:
            self.producers.record(producer, base, last, ts)
        elif marker is not None:
            self.producers.end_txn(marker, base, ts)
        if self.max_timestamp is None or ts > self.max_timestamp[0]:
            self.max_timestamp = (ts, last)
        return None  # the Ready is built once per turn, at `take_io`

    def prefer(self, node: NodeId) -> None:
        """The preferred replica moved (the controller's assignment changed, e.g. a transfer
        asked for): a leader elsewhere hands over at its next tick, without first serving
        `balance_ticks` (if the new one is caught up)."""
        if node != self.preferred:
            self.preferred = node
            self._led_ticks = max(self._led_ticks, self.balance_ticks)

    def tick(self) -> None:
        self.consensus.tick()
        self._campaign_early()
        self._balance()
        self._drain()

    def _campaign_early(self) -> None:
        """A new group's preferred replica campaigns again on its first ticks while it knows
        no leader and has no entry (see EARLY_CAMPAIGN_TICKS)."""
        if self._early_campaigns <= 0:
            return
        self._early_campaigns -= 1
        core = self.consensus.core
        if core.role == Role.LEADER or core.lead != NO_NODE or core.log.last_index() != 0:
            self._early_campaigns = 0
            return
        core.campaign()

    def _balance(self) -> None:
        """Hand leadership to the preferred replica once this leader has served long enough
        and the preferred one is caught up and alive (module docstring)."""
        core = self.consensus.core
        target = self.preferred
        if (target == NO_NODE or target == core.id or target not in core.config.voters
                or not core.leader_ready()):
            self._led_ticks = 0
            return
        self._led_ticks += 1
        if self._led_ticks < self.balance_ticks or core.lead_transferee != NO_NODE:
            return
        pr = core.progress.get(target)
        if (pr is None or pr.recovery is not None or not pr.recent_active
                or pr.match < core.log.last_index()):
            return
        self._led_ticks = 0  # a transfer that fails (aborted after a timeout) is tried again
        self.consensus.transfer_leadership(target)

    def step(self, m: Message) -> None:
        self.consensus.step(m)
        self._drain()

    def entries_loaded(self, loaded: Loaded) -> None:
        """What an `Io.load` read: the appends waiting for it go out."""
        rl = self.raft_log
        if loaded.backfill is not None and len(loaded.backfill) == rl.first_index() - 1:
            rl.prepend(loaded.backfill)
        self.consensus.entries_loaded(loaded.entries)
        self._drain()

    def flush_begin(self) -> None:
        self.consensus.flush_begin()

    def flush_done(self) -> None:
        self.consensus.flush_done()
        self._drain()
        core = self.consensus.core
        if self.raft_log.anchor(Index(min(core.commit, core.persisted))):
            self._kv_dirty = True

    def flush_failed(self, failure: PartitionResult) -> None:
        """The flush failed: it is to be retried (`Io.start_flush`); every produce waiting for an
        answer gets `failure` now (a retry is deduplicated if the batch commits after all)."""
        self.consensus.flush_failed()
        self.fail_waiting(failure)

    def flush_retry(self) -> None:
        """The flush did not reach what it was asked for because the log was cut below it
        meanwhile (a new leader replaced the suffix; no disk failure): nothing is reported
        durable, what it was to cover (messages held for it included) waits for the next
        flush, which starts at once; produces keep waiting."""
        self.consensus.flush_failed()

    def fail_waiting(self, failure: PartitionResult) -> None:
        """Answer every produce still waiting with `failure` (an error)."""
        self._io.answers += [(w, failure) for w in self._pending.values()]
        self._io.answers += [(w, failure) for _, w, _ in self._duplicates]
        self._pending.clear()
        self._duplicates.clear()

    def take_answers(self) -> list[tuple[Hashable, PartitionResult]]:
        """Only the answers waiting in the next Io (a host stopping: nothing else is done)."""
        answers, self._io.answers = self._io.answers, []
        return answers

    def take_io(self) -> Io:
        self._drain()
        io, self._io = self._io, Io()
        return io

    @property
    def kv_dirty(self) -> bool:
        """The kvstore has writes the next flush must make durable (before the log's)."""
        return self._kv_dirty

    def kv_flushing(self) -> None:
        """The host starts the kvstore's flush: what is written so far is covered."""
        self._kv_dirty = False

    # ---- output -----------------------------------------------------------------------------

    def _drain(self) -> None:
        io = self.consensus.take_io()
        cut = self.raft_log.take_truncation()
        if cut is not None:
            self.producers.truncate(cut)
            self.cuts += 1
        following = self.consensus.core.role != Role.LEADER
        for entries, hs in io.writes:
            if following:
                self._record_producers(entries)
            if self.raft_log.persist(entries, hs):
                self._kv_dirty = True
        self._io.send += io.send
        self._io.start_flush |= io.start_flush
        self._io.load += [self.raft_log.plan_load(lo, hi) for lo, hi in io.load]
        self._io.notices += io.notices
        for r in io.results:
            self._answer(r)
        self.raft_log.release(self.consensus.core.applied)
        # Raft's state is as `take_io` left it: persisting, answering and releasing above
        # touch only the storage log, the kvstore and the answers (the translator is the
        # storage log's), so nothing became ready since.
        hw = self._visible(drained=True)
        if hw > self.high_watermark:
            self.high_watermark = hw
            self._io.high_watermark = hw
            self._answer_duplicates()
            self.producers.stable(hw)

    def _record_producers(self, entries: list[Entry]) -> None:
        """A follower keeps the producer state of the batches it is sent, as the leader did
        when it appended them (`append`), so a retry reaching it after it becomes leader is
        deduplicated (Kafka's followers do the same from the batches they replicate)."""
        offsets = self.raft_log.offsets
        for e in entries:
            if e.kind != EntryKind.DATA or not e.batch:
                continue
            h = parse_header(e.batch)
            if h.producer_id >= 0:
                self.producers.apply(e.batch, 0, h, int(offsets.to_kafka(e.index)))

    def _answer(self, r: ReplicateResult) -> None:
        waiter = self._pending.pop(r.id, None)
        if waiter is None:
            return
        start = self.log.start_offset
        if r.error is None and r.base_offset is not None:
            self._io.answers.append((waiter, PartitionResult(0, int(r.base_offset), start)))
        else:
            self._io.answers.append((waiter, PartitionResult(
                ErrorCode.NOT_LEADER_OR_FOLLOWER, -1, start, f"not appended: {r.error!r}")))

    def _answer_duplicates(self) -> None:
        hw, still = self.high_watermark, []
        for last, waiter, ok in self._duplicates:
            if last < hw:
                self._io.answers.append((waiter, ok))
            else:
                still.append((last, waiter, ok))
        self._duplicates = still
