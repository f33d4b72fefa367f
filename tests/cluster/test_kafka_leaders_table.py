"""The leaders table: epochs only grow within one topic id; another id replaces; unknown is -1."""

from __future__ import annotations

import uuid

from redshank.cluster.kafka import UNKNOWN_EPOCH, LeadersTable, TopicPartition


def test_epochs_grow_per_topic_id_and_a_new_topic_id_replaces() -> None:
    t = LeadersTable()
    tp, a, b = TopicPartition("t", 0), uuid.uuid4(), uuid.uuid4()
    assert t.epoch(tp, a) == UNKNOWN_EPOCH
    t.update(tp, a, 3)
    t.update(tp, a, 2)  # a late, older announcement
    assert t.epoch(tp, a) == 3
    assert t.epoch(tp, b) == UNKNOWN_EPOCH  # asked about another incarnation of the topic
    t.update(tp, b, 1)  # the topic was created again
    assert t.epoch(tp, b) == 1 and t.epoch(tp, a) == UNKNOWN_EPOCH
    t.update(TopicPartition("t", 1), None, 5)
    assert t.epoch(TopicPartition("t", 1), None) == UNKNOWN_EPOCH  # no id: not reported
    t.drop_topic("t")
    assert t.epoch(tp, b) == UNKNOWN_EPOCH
