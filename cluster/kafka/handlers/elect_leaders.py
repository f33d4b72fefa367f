"""ElectLeaders (43): preferred-replica elections, answered from what the partitions' groups do.

Concern: judging each asked partition against the cluster's view of it, and building the
response. Leadership goes to a partition's preferred replica (its first) on its own (the
partition's leadership balance, `cluster/partition/partition.py`), so a PREFERRED election asks
for nothing new: it is answered ELECTION_NOT_NEEDED when the preferred replica leads already,
else once it does (NONE), or PREFERRED_LEADER_NOT_AVAILABLE if it does not within the request's
timeout (that replica is down or behind). Raft never elects a replica without every committed
entry, so an UNCLEAN election cannot be conducted: a partition with a leader needs none
(ELECTION_NOT_NEEDED), one without answers ELIGIBLE_LEADERS_NOT_AVAILABLE. Partitions of
topics the cluster does not hold, or past a topic's count, get UNKNOWN_TOPIC_OR_PARTITION.
A null list asks for every partition (Kafka's "all"). Must not know: actors, sockets, clocks.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.kafka.handlers.metadata import ReplicatedTopic
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages import elect_leaders as wire

__all__ = ["PREFERRED", "UNCLEAN", "Verdict", "asked", "build", "judge"]

PREFERRED = 0
UNCLEAN = 1


@dataclass(frozen=True, slots=True)
class Verdict:
    error_code: int
    message: str | None
    final: bool  # no later view can change it (waiting for the balance is pointless)


def asked(request: wire.ElectLeadersRequest, topics: Mapping[str, ReplicatedTopic]
          ) -> list[tuple[str, int]]:
    """The (topic, partition) pairs the request names, in its order; every partition of every
    topic the cluster holds when the list is null."""
    if request.topic_partitions is None:
        return [(name, p) for name, t in sorted(topics.items())
                for p in range(len(t.partitions))]
    return [(t.topic, p) for t in request.topic_partitions for p in t.partitions]


def judge(election_type: int, topic: ReplicatedTopic | None, partition: int, first: bool
          ) -> Verdict:
    """One partition, against the view now. `first`: this is the view before any wait (a
    preferred replica leading then needed no election)."""
    if topic is None or not 0 <= partition < len(topic.partitions):
        return Verdict(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                       "the cluster holds no such topic partition", True)
    p = topic.partitions[partition]
    leads = p.leader >= 0 and p.epoch >= 0
    if election_type == UNCLEAN:
        if leads:
            return Verdict(ErrorCode.ELECTION_NOT_NEEDED, "the partition has a leader", True)
        return Verdict(ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                       "no replica with every committed record can lead now (Raft never "
                       "elects one that lacks any)", False)
    if election_type != PREFERRED:
        return Verdict(ErrorCode.INVALID_REQUEST, f"election type {election_type}", True)
    if leads and p.replicas and p.leader == p.replicas[0]:
        if first:
            return Verdict(ErrorCode.ELECTION_NOT_NEEDED,
                           "the preferred replica is the leader", True)
        return Verdict(ErrorCode.NONE, None, True)
    return Verdict(ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                   f"the preferred replica (node {p.replicas[0] if p.replicas else -1}) "
                   "does not lead: it is down or not caught up", False)


def build(results: list[tuple[str, int, Verdict]], version: int
          ) -> wire.ElectLeadersResponse:
    by_topic: dict[str, list[wire.PartitionResult]] = {}
    for topic, partition, v in results:
        by_topic.setdefault(topic, []).append(
            wire.PartitionResult(partition_id=partition, error_code=v.error_code,
                                 error_message=v.message))
    return wire.ElectLeadersResponse(replica_election_results=tuple(
        wire.ReplicaElectionResult(topic=t, partition_result=tuple(rs))
        for t, rs in by_topic.items()))
