"""Partitions of topics a core could not look up: retriable, not "unknown" (issue 12).

Concern: one rule shared by the partition-addressed APIs (produce, fetch, list_offsets,
offset_for_leader_epoch, delete_records). A topic missing from a core's cache while the topic
controller cannot answer (its core is restarting), or still being created, is not known to be
missing: its partitions answer NOT_LEADER_OR_FOLLOWER, as Kafka answers for a partition it does
not lead, so clients refresh metadata and retry instead of failing what they queued for it.
Must not know: how topics are looked up, actors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from redshank.cluster.kafka.topic_table import TopicPartition
from redshank.protocol.error_codes import ErrorCode

__all__ = ["not_leader_if_unsure"]



class _Result(Protocol):
    @property
    def error_code(self) -> int: ...


R = TypeVar("R", bound=_Result)


def not_leader_if_unsure(results: dict[TopicPartition, R], unsure: frozenset[str],
                         not_leader: Callable[[TopicPartition], R]) -> None:
    """Replace, in place, the UNKNOWN_TOPIC_OR_PARTITION answers for topics in `unsure` with
    `not_leader(tp)` (a result carrying NOT_LEADER_OR_FOLLOWER)."""
    if not unsure:
        return
    for tp, r in results.items():
        if tp[0] in unsure and r.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            results[tp] = not_leader(tp)
