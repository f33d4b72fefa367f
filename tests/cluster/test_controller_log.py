"""ControllerLog: committed batches applied in offset order (index = offset + 1), proposals
matched back by batch identity whatever offset and epoch the log stamped, batches that are no
command skipped alike everywhere; the forwarded-proposal reply codec."""

from __future__ import annotations

import struct
import uuid

import pytest

from redshank.cluster.controller import (
    BootstrapCluster,
    DecommissionNode,
    NetAddress,
    RegisterNode,
    encode_command,
)
from redshank.cluster.controller.controller_log import (
    ControllerLog,
    ProposeReply,
    ProposeStatus,
    batch_id,
)
from redshank.cluster.raft.types import NodeId
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.errors import DecodeError
from redshank.protocol.records import BatchBuilder


def node(n: int) -> RegisterNode:
    return RegisterNode(NodeId(n), uuid.UUID(int=n), NetAddress("h", 1), NetAddress("h", 2), 1)


def stamped(batch: bytes, offset: int, epoch: int) -> bytes:
    """As the log stores it: base offset and partition leader epoch rewritten (CRC unchanged:
    it covers attributes onwards)."""
    b = bytearray(batch)
    struct.pack_into(">q", b, 0, offset)
    struct.pack_into(">i", b, 12, epoch)
    return bytes(b)


def test_applies_in_order_and_resolves_watched_by_identity() -> None:
    boot = encode_command(BootstrapCluster(uuid.UUID(int=1), (node(1),)), timestamp_ms=5)
    reg = encode_command(node(2), timestamp_ms=6)
    dup = encode_command(node(2), timestamp_ms=7)  # same command, another proposal
    clog = ControllerLog()
    clog.watch(batch_id(reg), "mine")
    clog.watch(batch_id(dup), "other")
    data = stamped(boot, 0, 1) + stamped(reg, 1, 1) + stamped(dup, 2, 3)
    resolved, bad = clog.apply(data, committed_end=2)  # the third is not committed yet
    assert bad == []
    assert [(r.token, r.offset, r.applied.ok) for r in resolved] == [("mine", 1, True)]
    assert clog.next_offset == 2 and clog.stm.last_applied == 2
    # Read again from the batch holding offset 2: earlier batches are skipped.
    resolved, _ = clog.apply(data, committed_end=3)
    assert [(r.token, r.offset) for r in resolved] == [("other", 2)]
    assert clog.next_offset == 3


def test_unwatched_and_undecodable_batches() -> None:
    clog = ControllerLog()
    boot = encode_command(BootstrapCluster(uuid.UUID(int=1), (node(1),)))
    junk = BatchBuilder()
    junk.append(b"not a command", key=b"xx", timestamp=0)
    gone = encode_command(DecommissionNode(NodeId(9)), timestamp_ms=1)
    clog.watch(batch_id(gone), "t")
    clog.unwatch(batch_id(gone), "t")
    data = stamped(boot, 0, 1) + stamped(junk.build(), 1, 1) + stamped(gone, 2, 1)
    resolved, bad = clog.apply(data, committed_end=3)
    assert resolved == []
    assert [offset for offset, _ in bad] == [1] and clog.skipped == 1
    assert clog.next_offset == 3
    assert clog.stm.cluster_uuid == uuid.UUID(int=1)


def test_refusals_are_results_too() -> None:
    clog = ControllerLog()
    reg = encode_command(node(1))
    clog.watch(batch_id(reg), 1)
    (r,), _ = clog.apply(stamped(reg, 0, 1), committed_end=1)
    assert r.applied.error_code == ErrorCode.INVALID_REQUEST  # not bootstrapped


def test_propose_reply_round_trip_and_bad_bytes() -> None:
    for reply in (ProposeReply(ProposeStatus.APPENDED, 42), ProposeReply(ProposeStatus.NOT_LEADER,
                  leader=3), ProposeReply(ProposeStatus.BAD_BATCH)):
        assert ProposeReply.decode(reply.encode()) == reply
    with pytest.raises(DecodeError):
        ProposeReply.decode(b"\x00" * 3)
    with pytest.raises(DecodeError):
        ProposeReply.decode(b"\x09" + b"\x00" * 12)
