"""Producer state of one partition: per producer id, the last 5 batches' sequences, and its
ongoing transaction (KIP-98).

Concern: deciding whether a batch from an idempotent producer is new, a retry of one already
written (the original offset is returned, no duplicate is stored), out of order, or from a fenced
epoch (notes G20); and the transactions: where each producer's ongoing transaction starts, which
ended (a COMMIT/ABORT marker), the aborted ones (the aborted-transactions index a read_committed
fetch is given) and the last stable offset they leave. A duplicate names the original's offsets;
whether the original is durable yet is its host's question. Must not know: logs, actors,
sockets. Not persisted on its own: the host rebuilds it from the log when the log is opened
(`replay`), so it holds what a restart would recover; an unknown producer id is accepted at any
sequence (as Kafka does once a producer's state expired).

Transactions follow Kafka's ProducerStateManager / ProducerAppendInfo (3.9):

    transactional batch, no txn ongoing  -> the txn starts at its base offset
    plain batch while a txn is ongoing   -> INVALID_TXN_STATE
    marker, epoch below the producer's   -> INVALID_PRODUCER_EPOCH
    marker, coordinator epoch below      -> TRANSACTION_COORDINATOR_FENCED
    marker, txn ongoing                  -> completed (first offset, marker offset); an ABORT
                                            joins the aborted index
    marker, no txn ongoing               -> written all the same (a retried marker), no txn

A completed transaction holds the last stable offset back until its marker is below the high
watermark (Kafka's unreplicated transactions), so a read_committed reader never sees a
transaction's data before the marker that says whether it was aborted is readable too.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from dataclasses import field

from redshank.cluster.partition.api import AppendMarker, ProducerBatch, ProducerInfo
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.errors import DecodeError
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import BatchHeader, iter_batches
from redshank.protocol.records import ControlType, iter_records, parse_control_record

__all__ = ["RECENT_MAX", "WINDOW", "CompletedTxn", "Duplicate", "ProducerStateTable",
           "SequenceError", "marker_of"]

WINDOW = 5  # clients keep at most 5 requests in flight per partition
_INT32_MAX = 2**31 - 1
# Completed transactions kept for the next segment snapshots; past it the oldest half goes
# (and a snapshot that would need them is not taken: its segment is replayed at open).
RECENT_MAX = 4096
# Segment snapshot payload: version, then the aborted transactions ended in the segment, then
# every producer as of the segment's end.
_SNAP_VERSION = 1
_COUNT = struct.Struct(">hI")
_N = struct.Struct(">I")
_ABORTED = struct.Struct(">qqq")  # producer id, first offset, last (marker) offset
_PRODUCER = struct.Struct(">qhiqq")  # id, epoch, coordinator epoch, last timestamp, txn start


@dataclass(frozen=True, slots=True)
class Duplicate:
    base_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class SequenceError:
    error_code: int
    message: str


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction its marker ended: [first_offset, last_offset]; last: the marker's."""

    producer_id: int
    first_offset: int
    last_offset: int
    aborted: bool


@dataclass(slots=True)
class _Producer:
    epoch: int
    # (first sequence, last sequence, base offset, last offset), oldest first.
    batches: deque[tuple[int, int, int, int]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    txn_first: int = -1  # first offset of its ongoing transaction; -1: none
    coordinator_epoch: int = -1
    last_timestamp: int = -1


def _next_seq(seq: int) -> int:
    return 0 if seq == _INT32_MAX else seq + 1


def marker_of(batch: bytes | bytearray | memoryview, pos: int, h: BatchHeader
              ) -> AppendMarker | None:
    """The COMMIT/ABORT marker a control batch carries (None: another control type, or a
    record we cannot read: it ends nothing, as Kafka skips unknown control types)."""
    try:
        for record in iter_records(batch, pos, verify_crc=False):
            c = parse_control_record(record)
            if c.kind not in (ControlType.ABORT, ControlType.COMMIT):
                return None
            return AppendMarker(h.producer_id, h.producer_epoch, c.coordinator_epoch or 0,
                                c.kind == ControlType.COMMIT)
    except DecodeError:
        return None
    return None


class ProducerStateTable:
    def __init__(self) -> None:
        self._producers: dict[int, _Producer] = {}
        # Invariant: pid in _ongoing <=> its _Producer.txn_first >= 0 (same value).
        self._ongoing: dict[int, int] = {}
        # Completed, marker not yet below the high watermark (they hold the LSO back; a Raft
        # truncation of the marker makes them ongoing again).
        self._unstable: list[CompletedTxn] = []
        # The aborted-transactions index, by marker offset (appended in log order).
        self._aborted: list[CompletedTxn] = []
        # Completed transactions whose marker is at or after `_recent_floor` (what a snapshot
        # at a segment's end needs to tell which transactions were still open there).
        self._recent: list[CompletedTxn] = []
        self._recent_floor = 0

    def __len__(self) -> int:
        return len(self._producers)

    # ---- idempotence and transactional batches -------------------------------------------

    def check(self, batch: ProducerBatch) -> Duplicate | SequenceError | None:
        """None: append it; Duplicate: answer with the original offset; else the error."""
        state = self._producers.get(batch.producer_id)
        if state is None:
            return None
        if batch.producer_epoch < state.epoch:
            return SequenceError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"epoch {batch.producer_epoch} below the producer's epoch {state.epoch}",
            )
        if not batch.transactional and state.txn_first >= 0:
            return SequenceError(
                ErrorCode.INVALID_TXN_STATE,
                f"a non-transactional batch from producer {batch.producer_id}, whose "
                f"transaction from offset {state.txn_first} is ongoing",
            )
        if batch.producer_epoch > state.epoch:
            return None  # a new epoch starts a fresh sequence space
        for first, last, base, last_offset in state.batches:
            if first == batch.first_sequence and last == batch.last_sequence:
                return Duplicate(base, last_offset)
        if not state.batches:
            return None
        expected = _next_seq(state.batches[-1][1])
        if batch.first_sequence != expected:
            return SequenceError(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"sequence {batch.first_sequence}, expected {expected}",
            )
        return None

    def _entry(self, producer_id: int, epoch: int) -> _Producer:
        """The producer's state at `epoch` (a newer epoch: a fresh sequence space, the
        transaction and coordinator epoch kept, as Kafka's maybeUpdateProducerEpoch)."""
        state = self._producers.get(producer_id)
        if state is None:
            state = self._producers[producer_id] = _Producer(epoch)
        elif epoch > state.epoch:
            state.epoch = epoch
            state.batches.clear()
        return state

    def record(self, batch: ProducerBatch, base_offset: int, last_offset: int,
               timestamp: int = -1) -> None:
        """Remember an appended batch (call only after `check` returned None)."""
        state = self._entry(batch.producer_id, batch.producer_epoch)
        state.batches.append((batch.first_sequence, batch.last_sequence, base_offset,
                              last_offset))
        state.last_timestamp = max(state.last_timestamp, timestamp)
        if batch.transactional and state.txn_first < 0:
            state.txn_first = base_offset
            self._ongoing[batch.producer_id] = base_offset

    # ---- markers --------------------------------------------------------------------------

    def check_marker(self, m: AppendMarker) -> SequenceError | None:
        """None: write the marker; else the error (Kafka's checkProducerEpoch and
        checkCoordinatorEpoch for a coordinator's append)."""
        state = self._producers.get(m.producer_id)
        if state is None:
            return None
        if m.producer_epoch < state.epoch:
            return SequenceError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"marker epoch {m.producer_epoch} below the producer's epoch {state.epoch}")
        if m.coordinator_epoch < state.coordinator_epoch:
            return SequenceError(
                ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                f"coordinator epoch {m.coordinator_epoch} below {state.coordinator_epoch}")
        return None

    def end_txn(self, m: AppendMarker, offset: int, timestamp: int = -1
                ) -> CompletedTxn | None:
        """The marker `m` was appended at `offset` (after `check_marker`, or replicated):
        the producer's ongoing transaction, if any, is completed."""
        state = self._entry(m.producer_id, m.producer_epoch)
        state.coordinator_epoch = m.coordinator_epoch
        state.last_timestamp = max(state.last_timestamp, timestamp)
        if state.txn_first < 0:
            return None  # a marker of an empty (or already ended) transaction: no txn
        done = CompletedTxn(m.producer_id, state.txn_first, offset, not m.commit)
        state.txn_first = -1
        del self._ongoing[m.producer_id]
        self._unstable.append(done)
        if len(self._unstable) > RECENT_MAX:
            # A follower's high watermark does not move (`stable` is a leader's): its oldest
            # go, as a new leader commits everything before it serves anyway.
            del self._unstable[:len(self._unstable) // 2]
        self._recent.append(done)
        if len(self._recent) > RECENT_MAX:
            cut = len(self._recent) // 2
            self._recent_floor = max(self._recent_floor, self._recent[cut - 1].last_offset + 1)
            del self._recent[:cut]
        if done.aborted:
            self._aborted.append(done)
        return done

    # ---- reads ----------------------------------------------------------------------------

    def stable(self, high_watermark: int) -> None:
        """The high watermark moved: completed transactions whose marker is below it no
        longer hold the LSO back (markers come in log order: the oldest go first)."""
        unstable = self._unstable
        i = 0
        while i < len(unstable) and unstable[i].last_offset < high_watermark:
            i += 1
        if i:
            del unstable[:i]

    def last_stable_offset(self, high_watermark: int) -> int:
        """Below it every transaction is decided and its marker readable: min(first offset of
        the ongoing and not yet stably completed transactions, high watermark)."""
        self.stable(high_watermark)
        lso = high_watermark
        for first in self._ongoing.values():
            lso = min(lso, first)
        for t in self._unstable:
            lso = min(lso, t.first_offset)
        return lso

    def aborted(self, fetch_offset: int, upper: int) -> tuple[tuple[int, int], ...]:
        """(producer id, first offset) of the aborted transactions a read of
        [fetch_offset, upper) overlaps (Kafka's collectAbortedTxns: last >= fetch offset,
        first < upper bound)."""
        i = bisect_left(self._aborted, fetch_offset, key=lambda t: t.last_offset)
        return tuple((t.producer_id, t.first_offset) for t in self._aborted[i:]
                     if t.first_offset < upper)

    def aborted_index(self) -> list[CompletedTxn]:
        return list(self._aborted)

    def describe(self) -> Iterator[ProducerInfo]:
        for pid, s in self._producers.items():
            last_seq = s.batches[-1][1] if s.batches else -1
            yield ProducerInfo(pid, s.epoch, last_seq, s.last_timestamp, s.coordinator_epoch,
                               s.txn_first)

    # ---- the log changed under it ---------------------------------------------------------

    def trim(self, log_start: int) -> None:
        """The log now starts at `log_start` (retention, DeleteRecords): aborted transactions
        ended below it leave the index with their segments."""
        i = bisect_left(self._aborted, log_start, key=lambda t: t.last_offset)
        if i:
            del self._aborted[:i]

    def truncate(self, offset: int) -> None:
        """The log lost every batch from `offset` on (a Raft conflict: they never committed):
        forget them, so a producer's retry of one is appended again instead of answered with
        offsets that now hold nothing or another batch; undo what they did to transactions (a
        cut marker reopens its transaction, a cut first batch unstarts it). A producer left
        with no batch and no transaction is forgotten (any sequence is accepted from it, as
        for an expired producer)."""
        cut = {(t.producer_id, t.last_offset): t for t in self._unstable + self._recent
               if t.last_offset >= offset}
        for t in sorted(cut.values(), key=lambda t: t.last_offset):
            if t.first_offset < offset and t.producer_id in self._producers:
                self._producers[t.producer_id].txn_first = t.first_offset
                self._ongoing[t.producer_id] = t.first_offset
        self._unstable = [t for t in self._unstable if t.last_offset < offset]
        self._recent = [t for t in self._recent if t.last_offset < offset]
        # Every completion from `offset` on is gone from the log: none is missing from
        # `_recent` there (a segment ending past the cut can be snapshotted again).
        self._recent_floor = min(self._recent_floor, offset)
        i = bisect_left(self._aborted, offset, key=lambda t: t.last_offset)
        del self._aborted[i:]
        for pid in list(self._producers):
            state = self._producers[pid]
            if state.txn_first >= offset:
                state.txn_first = -1
                del self._ongoing[pid]
            while state.batches and state.batches[-1][2] >= offset:
                state.batches.pop()
            if not state.batches and state.txn_first < 0:
                del self._producers[pid]

    # ---- segment snapshots (durable: storage/segment_state) ---------------------------------

    def segment_state(self, start: int, end: int) -> bytes | None:
        """The payload of the sealed segment [start, end): the aborted transactions whose
        marker it holds and every producer as of `end` (the transactions open there); None
        when what it needs was forgotten. Call in log order: completions before `end` are
        forgotten after it."""
        if end < self._recent_floor:
            return None
        open_at: dict[int, int] = {pid: first for pid, first in self._ongoing.items()
                                   if first < end}
        for t in self._recent:
            if t.first_offset < end <= t.last_offset:
                open_at[t.producer_id] = t.first_offset
        lo = bisect_left(self._aborted, start, key=lambda t: t.last_offset)
        hi = bisect_left(self._aborted, end, key=lambda t: t.last_offset)
        aborted = self._aborted[lo:hi]
        out = [_COUNT.pack(_SNAP_VERSION, len(aborted))]
        out += [_ABORTED.pack(t.producer_id, t.first_offset, t.last_offset) for t in aborted]
        out.append(_N.pack(len(self._producers)))
        out += [_PRODUCER.pack(pid, s.epoch, s.coordinator_epoch, s.last_timestamp,
                               open_at.get(pid, -1)) for pid, s in self._producers.items()]
        self._recent = [t for t in self._recent if t.last_offset >= end]
        self._recent_floor = max(self._recent_floor, end)
        return b"".join(out)

    @classmethod
    def restore(cls, payloads: list[bytes], end: int) -> ProducerStateTable | None:
        """The table as of `end`, the end of the segment whose payload is last: the aborted
        transactions of every payload (oldest segment first, each once), the producers of the
        last. None if a payload does not decode (the caller replays the log instead)."""
        table = cls()
        try:
            producers = b""
            for p in payloads:
                version, n = _COUNT.unpack_from(p, 0)
                if version != _SNAP_VERSION:
                    return None
                at = _COUNT.size
                for _ in range(n):
                    pid, first, last = _ABORTED.unpack_from(p, at)
                    table._aborted.append(CompletedTxn(pid, first, last, True))
                    at += _ABORTED.size
                producers = p[at:]
            (n,) = _N.unpack_from(producers, 0)
            for i in range(n):
                pid, epoch, coordinator_epoch, last_ts, first = _PRODUCER.unpack_from(
                    producers, _N.size + i * _PRODUCER.size)
                table._producers[pid] = _Producer(epoch, txn_first=first,
                                                  coordinator_epoch=coordinator_epoch,
                                                  last_timestamp=last_ts)
                if first >= 0:
                    table._ongoing[pid] = first
        except struct.error:
            return None
        table._recent_floor = end
        return table

    # ---- rebuilt from the log -------------------------------------------------------------

    def replay(self, batches: bytes | bytearray | memoryview, from_offset: int = -1) -> int:
        """Apply the whole batches in `batches` (as stored: offsets assigned) at or after
        `from_offset`, as a replica that appended them did; returns the offset after the last
        one seen (`from_offset` if none)."""
        after = from_offset
        for pos, h in iter_batches(batches, verify_crc=False):
            if h.last_offset < from_offset:
                continue
            after = h.last_offset + 1
            self.apply(batches, pos, h)
        return after

    def apply(self, buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader,
              base: int = -1) -> None:
        """One stored batch (header `h` at `pos` of `buf`) of a producer, at offset `base`
        (-1: the header's)."""
        if h.producer_id < 0:
            return
        base = h.base_offset if base < 0 else base
        if h.is_control:
            m = marker_of(buf, pos, h)
            if m is not None:
                self.end_txn(m, base, h.max_timestamp)
            return
        self.record(ProducerBatch(h.producer_id, h.producer_epoch, h.base_sequence,
                                  h.base_sequence + h.last_offset_delta, h.is_transactional),
                    base, base + h.last_offset_delta, h.max_timestamp)
