"""One group's replica on one node: the Raft core plus Redpanda's replication path around it.

    produce --> replicate_batcher --(one entry per Kafka batch)--> RaftCore.propose
                                                                   |
              Io.writes (page cache) <----- Ready ------------------+--> Io.send (appends go out
                    |                                                    with the leader's flush
              fsync (debounced) --> flush_done --> acks/votes leave,     still running)
                                                  on_persisted
    replicate_entries_stm resolves acks=0 at once, acks=1 once written, acks=all once committed.

The host calls the inputs (`replicate`, `tick`, `step`, ...), then `take_io()` and does what it
says, in order: write, send, start a flush if asked; when a flush it started finishes it calls
`flush_begin()` before and `flush_done()` after the fsync; entries in `Io.load` it reads where it
may block and hands back with `entries_loaded`. Must not know files, sockets or time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field

from redshank.cluster.raft.flush_debouncer import FlushDebouncer
from redshank.cluster.raft.offset_translator import Offset, OffsetTranslator
from redshank.cluster.raft.raft import RaftCore
from redshank.cluster.raft.replicate_batcher import ReplicateBatcher, ReplicateRequest
from redshank.cluster.raft.replicate_entries_stm import (
    ReplicateEntriesStm,
    ReplicateError,
    ReplicateResult,
)
from redshank.cluster.raft.types import (
    Config,
    Entry,
    HardState,
    Index,
    Message,
    NodeId,
    Notice,
    ProposeError,
    Role,
)
from redshank.protocol.fast_dataclass import dataclass


@dataclass(slots=True)
class Io:
    """What the host must do, in order."""

    writes: list[tuple[list[Entry], HardState | None]] = field(default_factory=list)
    send: list[Message] = field(default_factory=list)
    start_flush: bool = False
    results: list[ReplicateResult] = field(default_factory=list)
    applied: list[Entry] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    # Entries (lo, hi inclusive) to read where the host may block, then `entries_loaded`.
    load: list[tuple[Index, Index]] = field(default_factory=list)


class Consensus:
    def __init__(self, core: RaftCore, batcher: ReplicateBatcher | None = None,
                 translator: OffsetTranslator | None = None) -> None:
        """`translator`: the Kafka offsets of the log's entries, when the host knows them
        without reading every entry (a storage log); by default built from the log."""
        self.core = core
        self.batcher = batcher or ReplicateBatcher()
        self.stm = ReplicateEntriesStm()
        self.flusher = FlushDebouncer()
        # A translator the host passes is kept in step by its log; else Readys feed ours.
        self._feed_translator = translator is None
        if translator is None:
            translator = OffsetTranslator(core.log.first_index())
            for e in core.log.slice(core.log.first_index(), core.last_index()):
                translator.append(e)
        assert len(translator) == core.last_index(), "translator out of step with the log"
        self.translator = translator
        self._io = Io()

    # ---- inputs -----------------------------------------------------------------------------

    def replicate(self, req: ReplicateRequest) -> bool:
        """Queue a produce request; False if not leader or no memory units are left."""
        if self.core.role != Role.LEADER or not self.batcher.enqueue(req):
            return False
        while self.batcher.pending():
            req = self.batcher.take()
            if self._feed_translator:
                self._drain()  # the translator must cover the log before picking a base
            base = self.translator.next_offset()
            res = self.core.propose(req.batch)
            if isinstance(res, ProposeError):
                self.batcher.refuse(req)
                err = (ReplicateError.NOT_LEADER if res == ProposeError.NOT_LEADER
                       else ReplicateError.REFUSED)
                self._io.results.append(ReplicateResult(req.id, req.acks, Index(0),
                                                        self.core.term, None, err))
                continue
            self.batcher.hold(res, req)
            self._io.results += self.stm.appended(req, res, self.core.term, base)
        return True

    def tick(self) -> None:
        self.core.tick()

    def step(self, m: Message) -> None:
        self.core.step(m)

    def entries_loaded(self, entries: Sequence[Entry]) -> None:
        """The host read entries `Io.load` asked for: appends waiting for them go out."""
        self.core.entries_loaded(entries)

    def transfer_leadership(self, target: NodeId) -> ProposeError | None:
        return self.core.transfer_leadership(target)

    def propose_config(self, voters: frozenset[NodeId],
                       learners: frozenset[NodeId]) -> Index | ProposeError:
        return self.core.propose_config(voters, learners)

    @property
    def config(self) -> Config:
        return self.core.config

    def high_watermark(self, *, drained: bool = False) -> Offset | None:
        """What a leader may serve to Kafka clients: the majority-committed offset, and only
        once an entry of its term committed (Redpanda #5025, #14794). `drained`: the caller
        has just taken this input's Io (`take_io`) and changed nothing since, so there is
        nothing to drain first (a host's drain calls this after every `take_io`: the second
        drain found nothing, and cost as much as the first)."""
        if not self.core.leader_ready():
            return None
        if not drained:
            self._drain()
        return self.translator.end_offset(self.core.commit)

    # ---- flushes ----------------------------------------------------------------------------

    def flush_begin(self) -> None:
        self.flusher.begin()

    def flush_done(self) -> None:
        batch, again = self.flusher.complete()
        self._io.send += batch.messages
        if batch.mark is not None:
            self.core.on_persisted(batch.mark)
        self._io.start_flush |= again

    def flush_failed(self) -> None:
        """The flush failed (nothing new is durable): the next flush covers its writes."""
        self.flusher.abort()
        self._io.start_flush = True

    # ---- output -----------------------------------------------------------------------------

    def take_io(self) -> Io:
        self._drain()
        io, self._io = self._io, Io()
        return io

    def _drain(self) -> None:
        core, io = self.core, self._io
        while core.has_ready():
            rd = core.ready()
            if rd.entries and self._feed_translator:
                self.translator.truncate(rd.entries[0].index)
                for e in rd.entries:
                    self.translator.append(e)
            if rd.entries or rd.hard_state is not None:
                io.writes.append((rd.entries, rd.hard_state))
            io.send += rd.messages
            if core.role == Role.LEADER:
                # The follower requests for these entries are handed off: release their units.
                self.batcher.handed_off(rd.mark.index)
                io.results += self.stm.written(rd.mark.index)
            io.start_flush |= self.flusher.add(rd)
            io.applied += rd.committed
            io.notices += rd.notices
            io.load += rd.load
        if core.role == Role.LEADER:
            io.results += self.stm.committed(core.commit, core.log.term)
        elif not self.batcher.idle() or self.stm.pending():
            io.results += [ReplicateResult(q.id, q.acks, Index(0), core.term, None,
                                           ReplicateError.NOT_LEADER)
                           for q in self.batcher.drop_all()]
            io.results += self.stm.lost_leadership()
