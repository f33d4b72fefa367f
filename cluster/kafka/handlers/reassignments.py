"""AlterPartitionReassignments (45) and ListPartitionReassignments (46): reordering replicas.

Concern: judging each asked partition against its current replicas, and the responses. A
partition's first replica is its preferred leader (leadership goes there on its own: the
partition's balance), so giving the same replicas in another order moves leadership to the new
first one: Kafka's way to transfer a partition's leadership (reassign, then a preferred
election). Moving replicas to other brokers is not done yet: INVALID_REPLICA_ASSIGNMENT with the
reason. Nothing is ever in progress, so a cancel (null replicas) answers
NO_REASSIGNMENT_IN_PROGRESS and ListPartitionReassignments lists nothing. Must not know:
actors, the controller's commands, sockets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages import alter_partition_reassignments as alter
from redshank.protocol.messages import list_partition_reassignments as listing

__all__ = ["Move", "Verdict", "asked", "build", "build_list", "judge"]


@dataclass(frozen=True, slots=True)
class Move:
    """Make `node` the partition's first replica (its preferred leader)."""

    topic: str
    partition: int
    node: int


@dataclass(frozen=True, slots=True)
class Verdict:
    error_code: int
    message: str | None
    move: Move | None = None  # what to propose (None: nothing to change, or refused)


def asked(request: alter.AlterPartitionReassignmentsRequest
          ) -> list[tuple[str, int, tuple[int, ...] | None]]:
    return [(t.name, p.partition_index, p.replicas) for t in request.topics
            for p in t.partitions]


def judge(topic: str, partition: int, replicas: tuple[int, ...] | None,
          current: Mapping[str, Sequence[Sequence[int]]]) -> Verdict:
    """`current`: topic -> each partition's replicas (node ids, preferred first)."""
    parts = current.get(topic)
    if parts is None or not 0 <= partition < len(parts):
        return Verdict(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "no such topic partition")
    if replicas is None:
        return Verdict(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, "no reassignment is in progress")
    now = tuple(parts[partition])
    if len(set(replicas)) != len(replicas) or not replicas:
        return Verdict(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"replicas {list(replicas)}")
    if set(replicas) != set(now):
        return Verdict(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       f"moving replicas between brokers is not supported yet ({list(now)} "
                       f"-> {list(replicas)}); reordering them moves the preferred leader")
    if replicas[0] == now[0]:
        return Verdict(ErrorCode.NONE, None)
    return Verdict(ErrorCode.NONE, None, Move(topic, partition, replicas[0]))


def build(results: list[tuple[str, int, int, str | None]]
          ) -> alter.AlterPartitionReassignmentsResponse:
    """`results`: (topic, partition, error code, message), in asked order."""
    by_topic: dict[str, list[alter.ReassignablePartitionResponse]] = {}
    for topic, partition, code, message in results:
        by_topic.setdefault(topic, []).append(alter.ReassignablePartitionResponse(
            partition_index=partition, error_code=code, error_message=message))
    return alter.AlterPartitionReassignmentsResponse(responses=tuple(
        alter.ReassignableTopicResponse(name=t, partitions=tuple(ps))
        for t, ps in by_topic.items()))


def build_list() -> listing.ListPartitionReassignmentsResponse:
    return listing.ListPartitionReassignmentsResponse(topics=())
