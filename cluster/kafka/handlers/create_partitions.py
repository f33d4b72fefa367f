"""CreatePartitions (37): grow a topic's partition count.

Concern: what a request asks (`plan`: one `Grow` per distinct topic, duplicates refused), whether
a grow is allowed against the topic record (`decide`: unknown topic, internal topic, not larger
than today -> INVALID_PARTITIONS, explicit assignments naming another broker ->
INVALID_REPLICA_ASSIGNMENT), the new shard table (`grown`: new partitions continue the topic's
round-robin over the cores, existing ones never move) and the response (`build`). Must not
know: actors, sockets, where logs live.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from redshank.cluster.kafka.handlers.create_topics import MAX_PARTITIONS
from redshank.cluster.kafka.topic_table import TopicInfo, assign_cores
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages import create_partitions as wire

__all__ = ["Grow", "GrowOutcome", "build", "decide", "grown", "plan"]


@dataclass(frozen=True, slots=True)
class Grow:
    name: str
    count: int
    # Replica lists of the new partitions as asked (None: the broker chooses).
    assignments: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True, slots=True)
class GrowOutcome:
    name: str
    error_code: int
    error_message: str | None = None


def plan(request: wire.CreatePartitionsRequest) -> tuple[list[Grow], list[GrowOutcome]]:
    seen = Counter(t.name for t in request.topics)
    grows: list[Grow] = []
    refused: list[GrowOutcome] = []
    for t in request.topics:
        if seen[t.name] > 1:
            if t.name not in {r.name for r in refused}:
                refused.append(GrowOutcome(t.name, ErrorCode.INVALID_REQUEST,
                                           "topic named more than once"))
            continue
        assignments = (None if t.assignments is None
                       else tuple(tuple(a.broker_ids) for a in t.assignments))
        grows.append(Grow(t.name, t.count, assignments))
    return grows, refused


def decide(grow: Grow, info: TopicInfo | None, node_id: int, internal: frozenset[str]
           ) -> GrowOutcome | None:
    """Why `grow` is refused, or None when it may go ahead."""
    if info is None:
        return GrowOutcome(grow.name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                           f"topic {grow.name!r} does not exist")
    if grow.name in internal:
        return GrowOutcome(grow.name, ErrorCode.INVALID_REQUEST,
                           f"internal topic {grow.name!r} cannot be grown")
    if grow.count <= info.partitions:
        return GrowOutcome(grow.name, ErrorCode.INVALID_PARTITIONS,
                           f"topic {grow.name!r} has {info.partitions} partitions: the count "
                           f"can only grow, {grow.count} asked")
    if grow.count > MAX_PARTITIONS:
        return GrowOutcome(grow.name, ErrorCode.INVALID_PARTITIONS,
                           f"{grow.count} partitions: at most {MAX_PARTITIONS}")
    if grow.assignments is not None and (
            len(grow.assignments) != grow.count - info.partitions
            or any(a != (node_id,) for a in grow.assignments)):
        return GrowOutcome(grow.name, ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"one assignment [{node_id}] per new partition expected: this node "
                           "is the only broker")
    return None


def grown(info: TopicInfo, count: int, ncores: int) -> TopicInfo:
    """`info` with `count` partitions; the existing partitions keep their cores."""
    more = assign_cores(info.name, count, ncores)[info.partitions:]
    return dataclasses.replace(info, cores=info.cores + more)


def build(outcomes: list[GrowOutcome], version: int) -> wire.CreatePartitionsResponse:
    del version  # every field exists in every served version
    return wire.CreatePartitionsResponse(results=tuple(
        wire.CreatePartitionsTopicResult(o.name, o.error_code, o.error_message)
        for o in outcomes))
