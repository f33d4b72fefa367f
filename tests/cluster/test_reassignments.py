"""AlterPartitionReassignments judged against a partition's replicas (sans-IO): a reorder of the
same replicas moves the preferred leader (a move to propose), the same first replica needs
nothing, other brokers or duplicates are refused with the reason, a cancel finds nothing in
progress, unknown partitions are unknown; responses grouped by topic in asked order."""

from __future__ import annotations

from redshank.cluster.kafka.handlers import reassignments as ra
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import alter_partition_reassignments as wire

CURRENT = {"t": [[1, 2, 3], [2, 3, 1]]}


def test_reorders_move_the_preferred_replica_and_nothing_else_is_done() -> None:
    assert ra.judge("t", 0, (3, 1, 2), CURRENT) == ra.Verdict(
        ErrorCode.NONE, None, ra.Move("t", 0, 3))
    assert ra.judge("t", 1, (2, 1, 3), CURRENT) == ra.Verdict(ErrorCode.NONE, None)
    moved = ra.judge("t", 0, (1, 2, 4), CURRENT)
    assert moved.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT and moved.move is None
    assert "not supported" in (moved.message or "")
    assert ra.judge("t", 0, (1, 1, 2), CURRENT).error_code == \
        ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert ra.judge("t", 0, None, CURRENT).error_code == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
    assert ra.judge("t", 2, (1, 2, 3), CURRENT).error_code == \
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert ra.judge("x", 0, (1,), CURRENT).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_asked_and_built_in_order() -> None:
    req = wire.AlterPartitionReassignmentsRequest(topics=(
        wire.ReassignableTopic("t", (wire.ReassignablePartition(1, (1, 2, 3)),
                                     wire.ReassignablePartition(0, None))),))
    assert ra.asked(req) == [("t", 1, (1, 2, 3)), ("t", 0, None)]
    resp = ra.build([("t", 1, 0, None), ("t", 0, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, "x")])
    assert [(r.name, [(p.partition_index, p.error_code) for p in r.partitions])
            for r in resp.responses] == [("t", [(1, 0), (0, 85)])]
    assert ra.build_list().topics == ()
