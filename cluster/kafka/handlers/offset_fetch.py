"""OffsetFetch (9): wire <-> the group coordinator's `OffsetFetchRequest` / result.

Concern: v1-7 ask for one group (its error is the top-level error from v2), v8+ for several
(notes G10); `topics = null` (v2+) means every committed partition. Each group is asked of its
own coordinator: `to_api` returns one single-group request per group. Must not know: actors,
sockets.
"""

from __future__ import annotations

from redshank.cluster.group import OffsetFetchGroup, OffsetFetchGroupResult, OffsetFetchRequest
from redshank.protocol.messages import offset_fetch as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.OffsetFetchRequest, version: int) -> list[OffsetFetchRequest]:
    if version < 8:
        topics = None if request.topics is None else tuple(
            (t.name, tuple(t.partition_indexes)) for t in request.topics)
        groups = [OffsetFetchGroup(request.group_id, topics)]
    else:
        groups = [
            OffsetFetchGroup(g.group_id, None if g.topics is None else tuple(
                (t.name, tuple(t.partition_indexes)) for t in g.topics),
                g.member_id, g.member_epoch)
            for g in request.groups
        ]
    return [OffsetFetchRequest(token=0, groups=(g,), require_stable=request.require_stable)
            for g in groups]


def build(results: list[OffsetFetchGroupResult], version: int) -> wire.OffsetFetchResponse:
    if version < 8:
        g = results[0]
        topics: dict[str, list[wire.OffsetFetchResponsePartition]] = {}
        for p in g.partitions:
            topics.setdefault(p.topic, []).append(wire.OffsetFetchResponsePartition(
                p.partition, p.offset, p.leader_epoch, p.metadata, p.error))
        return wire.OffsetFetchResponse(
            topics=tuple(wire.OffsetFetchResponseTopic(n, tuple(ps)) for n, ps in topics.items()),
            error_code=g.error)
    out = []
    for g in results:
        by: dict[str, list[wire.OffsetFetchResponsePartitions]] = {}
        for p in g.partitions:
            by.setdefault(p.topic, []).append(wire.OffsetFetchResponsePartitions(
                p.partition, p.offset, p.leader_epoch, p.metadata, p.error))
        out.append(wire.OffsetFetchResponseGroup(
            g.group_id, tuple(wire.OffsetFetchResponseTopics(n, tuple(ps)) for n, ps in by.items()),
            g.error))
    return wire.OffsetFetchResponse(groups=tuple(out))
