"""Raft's log over a partition's storage log: one Kafka record batch per entry, kept opaque.

    Raft index   1     2      3      4     5      ...       (RaftCore sees RaftLog)
    kind         NOOP  DATA   DATA   NOOP  DATA
    Kafka        -     0..4   5..5   -     6..9             (storage.Log holds the DATA batches,
    offsets                                                  their leader epoch = the entry's term)

DATA entries live in the storage log only: appending one appends its batch (offsets and leader
epoch rewritten in place, no I/O). Raft's own entries (no-ops, configurations) take no Kafka
offset: they live in the partition's kvstore, each with the Kafka offset it sits before, and so
does the hard state. `persist(ready_entries, hard_state)` turns a Ready into the kvstore writes.

What is kept in memory: per index its term, kind and Kafka offsets (the translator), and the
entries appended since the last `release` with their batches. Older DATA entries come back from
the batch cache if it still holds them, else `EntriesUnavailable` (the host reads them on the
disk thread). Recovery (`recover`, on the disk thread) rebuilds the index from the last anchor
the kvstore holds (a committed index, its term and Kafka end offset) by walking the batch headers
after it, merging in the Raft entries, and cutting what a crash left inconsistent: a DATA batch
of a term with no no-op of that term before it (its no-op never became durable) and Raft entries
past a gap.

Must not know: sockets, actors, Kafka requests. Thread roles as in `storage/log.py`: `recover`
runs where the disk may be read; everything else on the partition's loop.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence

from redshank.cluster.raft.batches import batch_span
from redshank.cluster.raft.log import EntriesUnavailable
from redshank.cluster.raft.offset_translator import OffsetTranslator
from redshank.cluster.raft.types import (
    NO_NODE,
    Config,
    Entry,
    EntryKind,
    HardState,
    Index,
    NodeId,
    Term,
)
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import iter_batches, parse_header
from redshank.storage import KvStore, Log
from redshank.storage.errors import OffsetOutOfRangeError

__all__ = ["Anchor", "EntryLoad", "LeaderEpochs", "Loaded", "PartitionRaftLog", "RecoveredRaft",
           "backfill", "recover"]

_HS = struct.Struct(">qqq")  # term, vote, commit
_ANCHOR = struct.Struct(">qqq")  # index, term, Kafka end offset (next offset after it)
_META_KEY = struct.Struct(">q")
HS_KEY = b"hs"
ANCHOR_KEY = b"anchor"
# A new recovery anchor is written once this many entries past the last one.
ANCHOR_FLUSH_ENTRIES = 4096
META_PREFIX = b"m/"
# What one disk read of an `EntryLoad` asks the log for.
LOAD_CHUNK_BYTES = 4 << 20
# A load reads at most about this much (a recovery's window: RaftConfig max_recovery_inflight x
# max_append_bytes) and hands back that prefix: a leader keeps what it loaded until sent (it
# reads the next window ahead while one is in flight), so this bounds its memory per follower.
LOAD_MAX_BYTES = 32 << 20


@dataclass(frozen=True, slots=True)
class Anchor:
    """A committed index, its term, and the Kafka offset just after the entries up to it."""

    index: Index
    term: Term
    end_offset: int


@dataclass(slots=True)
class _Slot:
    term: Term
    kind: EntryKind
    config: Config | None = None


@dataclass(slots=True)
class RecoveredRaft:
    """What `recover` found: the hard state, and the log's entries from `first`."""

    hard_state: HardState
    first: Index
    prev_term: Term
    first_offset: int
    slots: list[tuple[_Slot, int]]  # (slot, Kafka offsets the entry takes)
    cut_at: int | None  # the Kafka offset the storage log was truncated at, if it was
    # The last configuration entry at or before the anchor (the log's entries before `first`
    # are not held, but the configuration in force may come from one of them).
    config: tuple[Index, Config] | None = None
    # Each term's first Kafka offset, from the no-ops the kvstore keeps (`LeaderEpochs`).
    epochs: list[tuple[int, int]] | None = None


@dataclass(frozen=True, slots=True)
class EntryLoad:
    """Entries the loop could not hand out from memory, to be read where the disk may be
    touched (`read`, the disk thread); what the loop knew of them when it asked: per entry
    (index, term, kind, config, Kafka base offset, Kafka end offset)."""

    slots: tuple[tuple[Index, Term, EntryKind, Config | None, int, int], ...]
    # Entries before the log's first index were asked for: rebuild the index below it
    # (`backfill`) from the log and the kvstore, up to this (first index, its Kafka offset).
    below: tuple[Index, int] | None = None
    kv: KvStore | None = None

    def read(self, log: Log) -> Loaded:
        """The entries, read from `log` (disk thread). Stops at the first DATA entry whose batch
        is gone or no longer the one asked for (truncated or trimmed meanwhile): Raft checks
        the terms again when the entries are stepped back in."""
        if self.below is None:
            return Loaded(self._read(log, self.slots))
        assert self.kv is not None
        first, first_offset = self.below
        index = backfill(log, self.kv, first, first_offset)
        if index is None or not self.slots:
            return Loaded([], index)
        lo, hi = self.slots[0][0], min(self.slots[-1][0], first - 1)
        slots, at = [], 0
        for i, (slot, span) in enumerate(index, start=1):
            if lo <= i <= hi:
                slots.append((Index(i), slot.term, slot.kind, slot.config, at, at + span))
            at += span
        return Loaded(self._read(log, tuple(slots)), index)

    @staticmethod
    def _read(log: Log, slots: tuple[tuple[Index, Term, EntryKind, Config | None, int, int],
                                     ...]) -> list[Entry]:
        data_slots = [s for s in slots if s[2] == EntryKind.DATA and s[5] > s[4]]
        # Base offset -> batch; read from the disk, a slice of the bytes read (no one else holds
        # them); from the log's memory, a view to copy.
        batches: dict[int, tuple[memoryview, bool]] = {}
        if data_slots:
            first, last = data_slots[0][4], data_slots[-1][5] - 1
            # In chunks of about LOAD_CHUNK_BYTES: a read asked for "everything up to `last`"
            # reads the segment to its end (the log knows offsets, not where `last` ends).
            at, read = first, 0
            while at <= last and read < LOAD_MAX_BYTES:
                try:
                    raw = log.read(at, LOAD_CHUNK_BYTES, last) if at >= log.start_offset \
                        else b""
                except OffsetOutOfRangeError:
                    raw = b""
                view = memoryview(raw)
                owned = isinstance(raw, bytes)
                read += len(view)
                after = at
                for pos, h in iter_batches(raw, verify_crc=False):
                    batches[h.base_offset] = (view[pos : pos + h.size], owned)
                    after = h.last_offset + 1
                if after == at:
                    break  # nothing more (trimmed or truncated meanwhile)
                at = after
        out: list[Entry] = []
        for index, term, kind, config, base, end in slots:
            if kind != EntryKind.DATA:
                out.append(Entry(term, index, kind, b"", config))
                continue
            got = batches.get(base)
            if got is None or batch_span(got[0]) != end - base:
                break
            batch, owned = got
            if parse_header(batch).partition_leader_epoch != term:
                break
            out.append(Entry(term, index, EntryKind.DATA, batch if owned else bytes(batch)))
        return out


@dataclass(frozen=True, slots=True)
class Loaded:
    """What an `EntryLoad` read: entries, and the index before the log's first one if it was
    asked for and could be rebuilt."""

    entries: list[Entry]
    backfill: list[tuple[_Slot, int]] | None = None


def backfill(log: Log, kv: KvStore, first: Index, first_offset: int
             ) -> list[tuple[_Slot, int]] | None:
    """The index of entries 1..first-1 (before a recovered log's first index, which begins at
    Kafka offset `first_offset`), rebuilt from the batch headers and Raft's own entries kept in
    the kvstore (disk thread). None when the log no longer begins at offset 0 (trimmed): only
    a snapshot could catch up a replica that far behind."""
    if log.start_offset != 0:
        return None
    metas: list[tuple[Index, Term, EntryKind, int, Config | None]] = []
    for key, value in kv.items(META_PREFIX):
        (index,) = _META_KEY.unpack(key[len(META_PREFIX):])
        if index < first:
            metas.append((Index(index), *_decode_meta(value)))
    metas.sort(key=lambda m: m[0])
    slots: list[tuple[_Slot, int]] = []
    index, offset, m = 0, 0, 0

    def place_metas() -> None:
        nonlocal m, index
        while m < len(metas) and metas[m][0] == index + 1 and metas[m][3] == offset:
            _, t, kind, _, config = metas[m]
            slots.append((_Slot(t, kind, config), 0))
            index += 1
            m += 1

    for h in log.scan(0):
        if h.base_offset >= first_offset:
            break
        place_metas()
        if h.base_offset != offset:
            return None
        slots.append((_Slot(Term(h.partition_leader_epoch), EntryKind.DATA),
                      h.last_offset - h.base_offset + 1))
        index, offset = index + 1, h.last_offset + 1
    place_metas()
    if index != first - 1 or offset != first_offset:
        return None
    return slots


def _encode_meta(term: Term, kind: EntryKind, position: int, config: Config | None) -> bytes:
    body: dict[str, object] = {"t": int(term), "k": int(kind), "p": position}
    if config is not None:
        body["c"] = [sorted(config.voters), sorted(config.outgoing), sorted(config.learners)]
    return json.dumps(body, separators=(",", ":")).encode()


def _decode_meta(raw: bytes) -> tuple[Term, EntryKind, int, Config | None]:
    body = json.loads(raw)
    config = None
    if "c" in body:
        v, o, lrn = body["c"]
        config = Config(frozenset(NodeId(n) for n in v), frozenset(NodeId(n) for n in o),
                        frozenset(NodeId(n) for n in lrn))
    return Term(body["t"]), EntryKind(body["k"]), int(body["p"]), config


def recover(log: Log, kv: KvStore) -> RecoveredRaft:
    """Rebuild the Raft index of a recovered storage log (disk thread: reads batch headers)."""
    raw = kv.get(HS_KEY)
    hs = HardState()
    if raw is not None:
        term, vote, commit = _HS.unpack(raw)
        hs = HardState(Term(term), NodeId(vote) if vote else NO_NODE, Index(commit))
    raw = kv.get(ANCHOR_KEY)
    anchor = Anchor(Index(0), Term(0), log.start_offset)
    if raw is not None:
        a_index, a_term, a_end = _ANCHOR.unpack(raw)
        anchor = Anchor(Index(a_index), Term(a_term), a_end)
    if anchor.end_offset > log.dirty_offset + 1 and log.start_offset == 0:
        # The log ends before its anchor: batches fsynced and committed are gone (a disk that
        # lied about an fdatasync). Count the whole log again (Raft's own entries are all kept),
        # so the index is what the files hold and the loss shows.
        anchor = Anchor(Index(0), Term(0), 0)
    if anchor.end_offset < log.start_offset:
        # Trimmed past the anchor: the batches in between cannot be counted any more. Number
        # on from the anchor (indexes stay increasing; a replica that lags this far catches up
        # from the Kafka log, not from these entries).
        anchor = Anchor(anchor.index, anchor.term, log.start_offset)
    metas: list[tuple[Index, Term, EntryKind, int, Config | None]] = []
    base_config: tuple[Index, Config] | None = None
    epochs = LeaderEpochs()
    for key, value in kv.items(META_PREFIX):  # in key order: by index
        (index,) = _META_KEY.unpack(key[len(META_PREFIX):])
        if index > anchor.index:
            metas.append((Index(index), *_decode_meta(value)))
        else:
            m_term, kind, position, config = _decode_meta(value)
            if kind == EntryKind.CONFIG and config is not None:
                base_config = (Index(index), config)
            epochs.begin(m_term, position)
    metas.sort(key=lambda m: m[0])
    while metas and metas[0][3] < anchor.end_offset:
        # Trimmed past these (DeleteRecords, retention, with no anchor since them): Raft's
        # entries before the log start count as before the anchor, whose term is the last of
        # them, the term the batch at the start was written in (else that batch would look
        # like one whose term's no-op was lost, and the whole log would be cut).
        m_index, m_term, kind, position, config = metas.pop(0)
        if kind == EntryKind.CONFIG and config is not None:
            base_config = (m_index, config)
        epochs.begin(m_term, position)
        anchor = Anchor(Index(max(anchor.index, m_index)), m_term, anchor.end_offset)

    slots: list[tuple[_Slot, int]] = []
    index, term, offset = anchor.index, anchor.term, anchor.end_offset
    m = 0
    cut_at: int | None = None

    def place_metas() -> None:
        nonlocal m, index, term
        while m < len(metas) and metas[m][0] == index + 1 and metas[m][3] == offset:
            _, t, kind, _, config = metas[m]
            slots.append((_Slot(t, kind, config), 0))
            epochs.begin(t, offset)
            index, term = Index(index + 1), t
            m += 1

    for h in log.scan(anchor.end_offset):
        if h.base_offset < anchor.end_offset:
            continue
        place_metas()
        epoch = Term(h.partition_leader_epoch)
        if epoch != term or h.base_offset != offset:
            # Every term begins with its leader's no-op, so a batch of a newer term than the
            # entry before it lost its no-op: the crash fell between the kvstore's flush and
            # the log's, and the batch was never acknowledged. Drop it and everything after.
            cut_at = h.base_offset
            break
        slots.append((_Slot(epoch, EntryKind.DATA), h.last_offset - h.base_offset + 1))
        index, term, offset = Index(index + 1), epoch, h.last_offset + 1
    if cut_at is None:
        place_metas()
    else:
        log.truncate(cut_at)
    for key_index, *_ in metas[m:]:
        kv.delete(META_PREFIX + _META_KEY.pack(key_index))  # past a gap: never persisted whole
    if hs.commit > index:
        hs = HardState(hs.term, hs.vote, index)
    if hs.commit < anchor.index:
        # The commit index is written with a new term or vote only; the anchor is a committed
        # index written since, and the log before it is no longer held.
        hs = HardState(hs.term, hs.vote, anchor.index)
    return RecoveredRaft(hs, Index(anchor.index + 1), anchor.term, anchor.end_offset, slots,
                         cut_at, base_config, epochs.entries)


class LeaderEpochs:
    """Kafka's leader-epoch cache: the first Kafka offset of each term, oldest first (Kafka's
    `LeaderEpochFileCache`). Every term's entries begin with its leader's no-op, which the
    kvstore keeps with the offset it sits before, so recovery rebuilds this from the kvstore.
    A term whose no-op sits at the same offset as the next term's (it appended no batch) stays
    listed: both answers below come out the same either way."""

    def __init__(self, entries: Iterable[tuple[int, int]] | None = None) -> None:
        self.entries: list[tuple[int, int]] = []
        for term, start in entries or ():
            self.begin(term, start)

    def begin(self, term: int, start: int) -> None:
        """An entry of `term` is appended at Kafka offset `start` (a no-op for a new term).
        Term 0 (a bootstrap configuration, before any leader) is no leader's epoch."""
        if term > 0 and (not self.entries or term > self.entries[-1][0]):
            self.entries.append((int(term), int(start)))

    def truncate_after(self, term: int) -> None:
        """The log's entries of terms after `term` are gone (a conflicting suffix)."""
        while self.entries and self.entries[-1][0] > term:
            self.entries.pop()

    def latest(self) -> int:
        return self.entries[-1][0] if self.entries else -1

    def end_of(self, epoch: int, log_end: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch's answer for `epoch` (KIP-101/279): the largest epoch at most
        `epoch` and the first offset after it (the next epoch's start; the log end offset for
        the latest); an epoch older than every known one ends where the first newer one
        starts; an unknown or future epoch is (-1, -1)."""
        if epoch < 0 or not self.entries or epoch > self.entries[-1][0]:
            return -1, -1
        if epoch == self.entries[-1][0]:
            return epoch, log_end
        floor = -1
        for term, start in self.entries:
            if term > epoch:
                return (floor if floor >= 0 else epoch), start
            floor = term
        return -1, -1  # not reached: the latest term is newer than `epoch`

    def epoch_at(self, offset: int) -> int:
        """The epoch of the batch at `offset` (the last term starting at or before it)."""
        found = -1
        for term, start in self.entries:
            if start > offset:
                break
            found = term
        return found


class PartitionRaftLog:
    """The RaftLog of one partition (loop thread), built from what `recover` found."""

    def __init__(self, log: Log, kv: KvStore, recovered: RecoveredRaft,
                 anchor_every: int = ANCHOR_FLUSH_ENTRIES) -> None:
        """`anchor_every`: entries between recovery anchors (the simulator uses few, so its
        short runs cross anchors)."""
        self.log = log
        self.kv = kv
        self.anchor_every = anchor_every
        self._first = recovered.first
        self._prev_term = recovered.prev_term
        self._slots: list[_Slot] = [s for s, _ in recovered.slots]
        self.offsets = OffsetTranslator(recovered.first, recovered.first_offset)
        for i, (_, span) in enumerate(recovered.slots):
            self.offsets.append_span(Index(recovered.first + i), span)
        self._recent: dict[Index, Entry] = {}
        # The configuration in force from before the first index, if any (`configs`).
        self._base_config = recovered.config
        self._anchor_written = Anchor(Index(recovered.first - 1), recovered.prev_term,
                                      recovered.first_offset)
        hs = recovered.hard_state
        self._term_vote: tuple[int, int] = (hs.term, hs.vote)
        self.epochs = LeaderEpochs(recovered.epochs)
        # The lowest Kafka offset a conflicting suffix was cut at since `take_truncation`.
        self._cut: int | None = None

    # ---- RaftLog ----------------------------------------------------------------------------

    def first_index(self) -> Index:
        return self._first

    def last_index(self) -> Index:
        return Index(self._first + len(self._slots) - 1)

    def term(self, index: Index) -> Term:
        if index == self._first - 1:
            return self._prev_term
        if index <= 0:
            return Term(0)
        assert self._first <= index <= self.last_index(), f"term of {index} not held"
        return self._slots[index - self._first].term

    def configs(self) -> list[tuple[Index, Config]]:
        held = [(Index(self._first + i), s.config) for i, s in enumerate(self._slots)
                if s.kind == EntryKind.CONFIG and s.config is not None]
        base = self._base_config
        return [base, *held] if base is not None and base[0] < self._first else held

    def entry(self, index: Index) -> Entry:
        got = self._recent.get(index)
        if got is not None:
            return got
        if index < self._first:
            # Before the recovery anchor: the host rebuilds the index below it (`backfill`).
            raise EntriesUnavailable(index, index)
        assert index <= self.last_index(), f"entry {index} not held"
        slot = self._slots[index - self._first]
        if slot.kind != EntryKind.DATA:
            return Entry(slot.term, index, slot.kind, b"", slot.config)
        base = self.offsets.to_kafka(index)
        span = self.offsets.end_offset(index) - base
        data = self.log.read_cached(base, 1, base + span - 1)
        if data is None or not len(data):
            raise EntriesUnavailable(index, index)
        return Entry(slot.term, index, EntryKind.DATA, data)

    def slice(self, lo: Index, hi: Index) -> list[Entry]:
        try:
            return [self.entry(Index(i)) for i in range(lo, hi + 1)]
        except EntriesUnavailable:
            raise EntriesUnavailable(lo, hi) from None

    def plan_load(self, lo: Index, hi: Index) -> EntryLoad:
        """What to read to hand out entries lo..hi (Raft asked for them in `Ready.load`)."""
        if lo < self._first:
            hi = Index(min(hi, self._first - 1))
            return EntryLoad(tuple((Index(i), Term(0), EntryKind.DATA, None, 0, 0)
                                   for i in range(lo, hi + 1)),
                             (self._first, int(self.offsets.to_kafka(self._first))
                              if self._first <= self.last_index()
                              else int(self.offsets.next_offset())), self.kv)
        lo, hi = Index(max(lo, self._first)), Index(min(hi, self.last_index()))
        return EntryLoad(tuple(
            (Index(i), s.term, s.kind, s.config, int(self.offsets.to_kafka(Index(i))),
             int(self.offsets.end_offset(Index(i))))
            for i in range(lo, hi + 1) for s in (self._slots[i - self._first],)))

    def prepend(self, slots: list[tuple[_Slot, int]]) -> None:
        """The index of every entry before the first one, rebuilt (`backfill`): the log
        starts at index 1 again."""
        assert len(slots) == self._first - 1, "backfill does not end before the first index"
        self.offsets.extend_back([span for _, span in slots], 0)
        self._slots[:0] = [s for s, _ in slots]
        self._first = Index(1)
        self._prev_term = Term(0)

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        last = self.last_index()
        assert self._first <= first <= last + 1, "append leaves a gap"
        if first <= last:
            self._truncate(first)
        for e in entries:
            if e.kind == EntryKind.DATA:
                buf = e.batch
                if not isinstance(buf, bytearray | memoryview) or memoryview(buf).readonly:
                    buf = bytearray(buf)  # a follower's entry off the wire: the log restamps it
                res = self.log.append(buf, e.term, crc_checked=True)
                assert res.base_offset == self.offsets.next_offset(), "Kafka offsets diverged"
                assert res.batches == 1, "one Kafka batch per entry"
                self._recent[e.index] = e if buf is e.batch else Entry(
                    e.term, e.index, e.kind, buf)
            self.epochs.begin(e.term, self.offsets.next_offset())
            self._slots.append(_Slot(e.term, e.kind, e.config))
            self.offsets.append(e)

    def _truncate(self, first: Index) -> None:
        """Drop `first` and every later entry (a new leader's log replaces them)."""
        if first <= self.last_index():
            data_from = next((self.offsets.to_kafka(Index(i))
                              for i in range(first, self.last_index() + 1)
                              if self._slots[i - self._first].kind == EntryKind.DATA), None)
            if data_from is not None:
                self.log.truncate(data_from)  # file I/O on the loop: rare (conflicts only)
                self._cut = data_from if self._cut is None else min(self._cut, data_from)
        for i in range(first, self.last_index() + 1):
            if self._slots[i - self._first].kind != EntryKind.DATA:
                self.kv.delete(META_PREFIX + _META_KEY.pack(i))
        self.epochs.truncate_after(self.term(Index(first - 1)))
        del self._slots[first - self._first:]
        self.offsets.truncate(first)
        for i in [i for i in self._recent if i >= first]:
            del self._recent[i]

    def take_truncation(self) -> int | None:
        """The lowest Kafka offset the log was cut at since the last call, if it was."""
        cut, self._cut = self._cut, None
        return int(cut) if cut is not None else None

    # ---- durability -------------------------------------------------------------------------

    def persist(self, entries: Iterable[Entry], hard_state: HardState | None) -> bool:
        """Write a Ready's Raft entries and a new term or vote to the kvstore (not yet durable);
        True if it wrote (all of it must be durable with the log's next flush). A change of the
        commit index alone writes nothing."""
        wrote = False
        for e in entries:
            if e.kind != EntryKind.DATA:
                position = self.offsets.to_kafka(e.index)
                self.kv.put(META_PREFIX + _META_KEY.pack(e.index),
                            _encode_meta(e.term, e.kind, position, e.config))
                wrote = True
        if hard_state is not None and (hard_state.term, hard_state.vote) != self._term_vote:
            # Term and vote must be durable before anything depending on them leaves. A change
            # of the commit index alone is not written: recovery learns it again (the anchor).
            self._term_vote = (hard_state.term, hard_state.vote)
            self.kv.put(HS_KEY, _HS.pack(hard_state.term, hard_state.vote, hard_state.commit))
            wrote = True
        return wrote

    def anchor(self, durable: Index) -> bool:
        """`durable` is committed and fsynced here: once it is `anchor_every` entries past the
        last anchor, write it as where recovery starts (so a restart scans at most about that
        many batch headers). True if it wrote (the kvstore must be flushed with the log's next
        flush)."""
        if durable < self._first or durable - self._anchor_written.index < self.anchor_every:
            return False
        a = Anchor(durable, self.term(durable), self.offsets.end_offset(durable))
        self.kv.put(ANCHOR_KEY, _ANCHOR.pack(a.index, a.term, a.end_offset))
        # Raft's own entries below the anchor stay (one no-op per term, and configurations):
        # `backfill` needs them to rebuild the index before the anchor for a lagging follower.
        self._anchor_written = a
        return True

    def release(self, up_to: Index) -> None:
        """Entries up to `up_to` are no longer needed in memory (applied, sent to followers)."""
        for i in [i for i in self._recent if i <= up_to]:
            del self._recent[i]

    def compact(self, below: Index) -> None:
        """Forget what is known of the entries below `below` (memory bound)."""
        below = Index(min(below, self.last_index()))
        if below <= self._first:
            return
        self._prev_term = self.term(Index(below - 1))
        dropped = [c for c in self.configs() if c[0] < below]
        if dropped:
            self._base_config = dropped[-1]
        del self._slots[: below - self._first]
        self.offsets.compact(below)
        self._first = below
        self.release(Index(below - 1))
