"""The partition probe of a core: one row per partition this core hosts, published as the
`partitions` table of the core's stats block (read by the admin API's `/v1/partitions` and
`/metrics`).

Concern: turning the partition leaders a partition manager holds into rows of plain numbers:
topic, partition, log start offset, high watermark, log end offset, bytes on disk, and the
Raft view this replica has (role, leader node, term, voters). Read from the actors' fields on
the core's loop, once per `PUBLISH_EVERY_S`, never per message. Must not know: HTTP, Prometheus,
Kafka requests.
"""

from __future__ import annotations

from typing import Any

import pykka

from redshank.actors.partition_leader import PartitionLeader
from redshank.actors.runtime import publish_tables

__all__ = ["PUBLISH_EVERY_S", "partition_rows", "publish_partitions"]

PUBLISH_EVERY_S = 1.0


def _row(leader: PartitionLeader) -> dict[str, Any]:
    log = leader.log
    raft = leader.part.consensus.core
    row: dict[str, Any] = {
        "topic": leader.topic,
        "partition": leader.partition,
        "log_start_offset": int(log.start_offset),
        "high_watermark": int(leader.high_watermark),
        "log_end_offset": int(log.dirty_offset) + 1,
        "bytes": sum(size for _, _, size in log.segments()),
        "role": raft.role.name.lower(),
        "term": int(raft.term),
        # A partition of a single node runs a Raft group of one whose ids are not node ids:
        # None here, "this node" to whoever knows its id (the admin API).
        "leader": None,
        "replicas": None,
    }
    if leader.host.replicas is not None:
        row["leader"] = int(raft.lead) or None
        row["replicas"] = sorted(int(n) for n in raft.config.all_voters())
    return row


def partition_rows(leaders: list[pykka.ActorRef[Any]]) -> list[dict[str, Any]]:
    """The rows of the partition leaders among `leaders` (others, e.g. group hosts, skipped)."""
    rows = []
    for ref in leaders:
        actor = ref._actor_weakref()
        if isinstance(actor, PartitionLeader) and not actor.log.closed:
            rows.append(_row(actor))
    return rows


def publish_partitions(core: int, leaders: list[pykka.ActorRef[Any]]) -> None:
    """Publish this core's rows; past the tables region's room (about 10k partitions on a
    core) an empty table that says so, rather than a stale one."""
    if not publish_tables({"core": core, "partitions": partition_rows(leaders)}):
        publish_tables({"core": core, "partitions": [], "truncated": True})
