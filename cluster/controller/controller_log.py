"""From group 0's committed record batches to applied commands, and back to who proposed them.

Concern: the controller's side of its log, sans-IO. `ControllerLog` feeds committed batches (the
Kafka-offset range below the committed end, in order) to `ControllerStm.apply`, and matches each
applied batch against the proposals this node is waiting for, by identity (`BatchId`: the
batch's CRC, first timestamp and size, which the log's restamping of base offset and leader
epoch leaves alone). The proposer does not need to learn where its batch landed, nor trust a
leader's answer: every node applies the same log, so the `Applied` its own state machine computes
is the one every node computes. `ProposeReply` is what a leader answers a forwarded proposal.

    proposer                                  every node
    --------                                  ----------
    encode_command(cmd, timestamp_ms=unique)  committed batches --> ControllerLog.apply(data)
    ControllerLog.watch(batch_id, token)          decode_command -> ControllerStm.apply
    append (leader) / forward to leader           batch_id watched? -> (token, Applied)

Index: a command's index for `ControllerStm.apply` is its Kafka offset + 1 (commands are one
record each, and Raft's own entries take no offset), so `stm.last_applied` is also the next
offset to apply, and a snapshot says where to resume.

A batch that does not decode as a command (a bug, or a newer node's command type) is skipped and
reported, on every node alike, so the state stays identical. Must not know: Raft, the storage log,
sockets, clocks, how the batches were read.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Hashable
from dataclasses import field

from redshank.cluster.controller._codec import ControllerDecodeError
from redshank.cluster.controller.commands import Command, decode_command
from redshank.cluster.controller.controller_stm import Applied, ControllerStm
from redshank.cluster.raft.types import Index
from redshank.protocol.errors import DecodeError
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.record_batch import iter_batches, parse_header

__all__ = ["BatchId", "ControllerLog", "ProposeReply", "ProposeStatus", "Resolved",
           "batch_id"]


@dataclass(frozen=True, slots=True)
class BatchId:
    """A command batch's identity, unchanged by the offsets and epoch the log stamps on it."""

    crc: int
    timestamp: int
    size: int


def batch_id(batch: bytes | bytearray | memoryview) -> BatchId:
    h = parse_header(batch)
    return BatchId(h.crc, h.base_timestamp, h.size)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A watched proposal was applied at `offset` with this result."""

    token: Hashable
    offset: int
    applied: Applied


@dataclass(slots=True)
class ControllerLog:
    """The applying side of one node's controller (its host's loop): created with the host's
    `ControllerStm` (restored from a snapshot or empty), fed committed batches in offset order,
    ends with the host."""

    stm: ControllerStm = field(default_factory=ControllerStm)
    _watched: dict[BatchId, list[Hashable]] = field(default_factory=dict)
    skipped: int = 0  # committed batches that were no command (reported by the host)

    @property
    def next_offset(self) -> int:
        """The Kafka offset of the next command to apply."""
        return int(self.stm.last_applied)

    def watch(self, bid: BatchId, token: Hashable) -> None:
        """Report `token` when a batch with identity `bid` is applied (the first one from now)."""
        self._watched.setdefault(bid, []).append(token)

    def unwatch(self, bid: BatchId, token: Hashable) -> None:
        tokens = self._watched.get(bid)
        if tokens is not None and token in tokens:
            tokens.remove(token)
            if not tokens:
                del self._watched[bid]

    def drop_watches(self) -> list[Hashable]:
        """Forget every watch (the host closes); returns their tokens."""
        tokens = [t for ts in self._watched.values() for t in ts]
        self._watched.clear()
        return tokens

    def apply(self, data: bytes | memoryview, committed_end: int
              ) -> tuple[list[Resolved], list[tuple[int, str]]]:
        """Apply the whole batches in `data` (as read from the log from `next_offset`) that end
        below `committed_end`, in order; batches before `next_offset` are skipped (a read starts
        at the batch holding the offset). Returns the watched proposals resolved, and the
        (offset, why) of batches that were no command."""
        resolved: list[Resolved] = []
        bad: list[tuple[int, str]] = []
        view = memoryview(data)
        for pos, h in iter_batches(data, verify_crc=False):
            if h.last_offset >= committed_end:
                break
            if h.base_offset < self.next_offset:
                continue
            batch = view[pos : pos + h.size]
            try:
                cmd: Command | None = decode_command(batch)
            except ControllerDecodeError as exc:
                cmd = None
                bad.append((h.base_offset, str(exc)))
                self.skipped += 1
            index = Index(h.last_offset + 1)
            if cmd is None:
                # Skipped alike on every node; the index still moves past it.
                self.stm.last_applied = index
                continue
            applied = self.stm.apply(index, cmd)
            tokens = self._watched.pop(BatchId(h.crc, h.base_timestamp, h.size), None)
            for token in tokens or ():
                resolved.append(Resolved(token, h.base_offset, applied))
        return resolved, bad


# ---- the reply to a forwarded proposal ------------------------------------------------------

class ProposeStatus(enum.IntEnum):
    APPENDED = 0  # in the leader's log at `offset` (not yet committed)
    NOT_LEADER = 1  # `leader`: who this node believes leads (0: nobody known)
    BAD_BATCH = 2  # not a command batch: never retried


_REPLY = struct.Struct(">bqi")  # status, offset, leader


@dataclass(frozen=True, slots=True)
class ProposeReply:
    status: ProposeStatus
    offset: int = -1
    leader: int = 0

    def encode(self) -> bytes:
        return _REPLY.pack(self.status, self.offset, self.leader)

    @classmethod
    def decode(cls, raw: bytes | memoryview) -> ProposeReply:
        """Raises `DecodeError` on anything but a reply this module encoded."""
        if len(raw) != _REPLY.size:
            raise DecodeError(f"propose reply of {len(raw)} bytes, not {_REPLY.size}")
        status, offset, leader = _REPLY.unpack(raw)
        try:
            return cls(ProposeStatus(status), offset, leader)
        except ValueError:
            raise DecodeError(f"unknown propose status {status}") from None
