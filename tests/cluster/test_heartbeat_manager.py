"""heartbeat_manager: one node-level message per peer for all groups; suppressed by appends."""

from __future__ import annotations

from redshank.cluster.raft import GroupId, HeartbeatManager, Message, MessageType, NodeId, Term

MT = MessageType


def msg(kind: MessageType, dst: int) -> Message:
    return Message(kind, NodeId(1), NodeId(dst), Term(1))


def test_one_message_per_node_pair_for_all_groups() -> None:
    hb = HeartbeatManager(NodeId(1))
    for g in range(10):
        rest = hb.collect(GroupId(g), [msg(MT.HEARTBEAT, 2), msg(MT.HEARTBEAT, 3)])
        assert rest == []
    out = hb.flush()
    assert [(nb.dst, len(nb.beats)) for nb in out] == [(2, 10), (3, 10)]
    assert hb.flush() == []


def test_heartbeat_suppressed_while_appends_flow() -> None:
    hb = HeartbeatManager(NodeId(1))
    rest = hb.collect(GroupId(0), [msg(MT.APPEND, 2), msg(MT.HEARTBEAT, 2), msg(MT.HEARTBEAT, 3)])
    assert [m.type for m in rest] == [MT.APPEND]
    hb.collect(GroupId(1), [msg(MT.HEARTBEAT, 2)])
    out = hb.flush()
    # group 0 -> 2 is suppressed (its append carried the commit index); group 1 -> 2 is not.
    assert [(nb.dst, [g for g, _m in nb.beats]) for nb in out] == [(2, [1]), (3, [0])]
    assert hb.suppressed == 1
    # The next interval with no appends sends heartbeats again.
    hb.collect(GroupId(0), [msg(MT.HEARTBEAT, 2)])
    assert [nb.dst for nb in hb.flush()] == [2]
