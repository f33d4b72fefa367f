"""What a host of group 0 does between its `Partition` and its `ControllerLog`, sans-IO.

Concern: the rules every host of the controller follows (the node's `ControllerHost` on an event
loop, the simulator's `ControllerReplica` on virtual time): where the applied state's snapshot
lives (`SNAPSHOT_KEY` in group 0's kvstore) and how a restart restores it, which Kafka offsets
may be applied (committed and durable here: `committed_end`), and when a snapshot is due
(`apply_batches`: every `snapshot_every` commands). The host reads the batches (from memory, or
on its disk thread) and writes the snapshot with its next flush; this module only decides.

    restart:  kv[SNAPSHOT_KEY] --restore_snapshot--> ControllerStm (last_applied = k)
    turn:     committed_end(part) --host reads [next_offset, end)--> apply_batches(...)
                  -> resolved proposals, skipped batches, snapshot bytes to put (or None)

Must not know: threads, event loops, clocks, sockets, how or when the host reads or flushes.
"""

from __future__ import annotations

from redshank.cluster.controller.controller_log import ControllerLog, Resolved
from redshank.cluster.controller.controller_stm import ControllerStm
from redshank.cluster.partition.partition import Partition
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage import KvStore

__all__ = ["READ_BYTES", "SNAPSHOT_KEY", "AppliedBatches", "apply_batches", "committed_end",
           "restore_snapshot"]

SNAPSHOT_KEY = b"controller/snapshot"  # in group 0's kvstore, next to Raft's keys
READ_BYTES = 1 << 20  # one read of committed batches


def restore_snapshot(kv: KvStore, stm: ControllerStm) -> bool:
    """Restore the snapshot kept in `kv`, if any (at a restart, before applying anything): the
    log is then applied from `stm.last_applied`. A snapshot is only ever of committed commands
    this node applied, durable before or with the entries after it."""
    raw = kv.get(SNAPSHOT_KEY)
    if raw is None:
        return False
    stm.restore(raw)
    return True


def committed_end(part: Partition) -> int:
    """The Kafka offset after the last entry both committed and durable here: what may be
    applied."""
    return int(part.raft_log.offsets.end_offset(part.consensus.core.applied))


@dataclass(frozen=True, slots=True)
class AppliedBatches:
    resolved: list[Resolved]  # watched proposals applied (their tokens, offsets, results)
    bad: list[tuple[int, str]]  # (offset, why) of batches that were no command (skipped)
    snapshot: bytes | None  # due: put it under SNAPSHOT_KEY (written with the next flush)


def apply_batches(clog: ControllerLog, data: bytes | memoryview, end: int,
                  snapshot_every: int) -> AppliedBatches:
    """Apply the batches of `data` (read from `clog.next_offset`) below `end`; a snapshot is
    due when the count of applied commands crossed a multiple of `snapshot_every` (0: never)."""
    before = clog.next_offset
    resolved, bad = clog.apply(data, end)
    after = clog.next_offset
    due = snapshot_every and after // snapshot_every > before // snapshot_every
    return AppliedBatches(resolved, bad, clog.stm.snapshot() if due else None)
