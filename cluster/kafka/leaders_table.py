"""The leaders table of a core: each partition's leader epoch, as its leader announced it.

Concern: what Metadata reports as a partition's `leader_epoch` (KIP-320), and what a core may
check a fetch's `current_leader_epoch` against without asking the partition's owner. A leader
announces its Raft term to every core once an entry of that term committed (it serves from
then on); a partition never announced here is reported with epoch -1 (unknown: clients then
skip their epoch checks). The owner of a partition always checks the epoch itself, so a stale
entry here costs a client one FENCED_LEADER_EPOCH and a metadata refresh, never wrong data.
Must not know: actors, how announcements travel, logs.
"""

from __future__ import annotations

import uuid

from redshank.cluster.kafka.topic_table import TopicPartition

__all__ = ["UNKNOWN_EPOCH", "LeadersTable"]

UNKNOWN_EPOCH = -1


class LeadersTable:
    """One per core (created by the core's setup, shared by its topic cache, which applies the
    announcements, and its request paths, which read it); ends with the core."""

    def __init__(self) -> None:
        self._epochs: dict[TopicPartition, tuple[uuid.UUID | None, int]] = {}

    def update(self, tp: TopicPartition, topic_id: uuid.UUID | None, epoch: int) -> None:
        """A leader of `tp` serves in `epoch`. Epochs only grow within one topic id: an older
        announcement arriving late changes nothing; another id (the topic was deleted and
        created again) replaces the entry."""
        known = self._epochs.get(tp)
        if known is None or known[0] != topic_id or epoch >= known[1]:
            self._epochs[tp] = (topic_id, epoch)

    def epoch(self, tp: TopicPartition, topic_id: uuid.UUID | None) -> int:
        """The epoch announced for `tp` of that topic id, else UNKNOWN_EPOCH."""
        known = self._epochs.get(tp)
        if known is None or known[0] is None or known[0] != topic_id:
            return UNKNOWN_EPOCH
        return known[1]

    def drop_topic(self, topic: str) -> None:
        for tp in [tp for tp in self._epochs if tp.topic == topic]:
            del self._epochs[tp]
