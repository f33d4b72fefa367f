"""ElectLeaders judged against a cluster view (sans-IO): preferred already leading needs no
election; a preferred replica that came to lead while the request waited is a success; one
down or behind is PREFERRED_LEADER_NOT_AVAILABLE (not final: the wait goes on); unclean
elections never run (a leader: not needed; none: no eligible replica); unknown partitions;
a null list means every partition of every topic; results grouped by topic in asked order."""

from __future__ import annotations

import uuid

from redshank.cluster.kafka.handlers import elect_leaders as el
from redshank.cluster.kafka.handlers.metadata import ReplicatedPartition, ReplicatedTopic
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import elect_leaders as wire

TOPIC = ReplicatedTopic(uuid.uuid4(), (
    ReplicatedPartition((1, 2, 3), 1, 4),     # the preferred replica leads
    ReplicatedPartition((2, 3, 1), 3, 5),     # another one leads
    ReplicatedPartition((3, 1, 2), -1, -1),   # no leader now
))


def test_preferred_elections() -> None:
    first = [el.judge(el.PREFERRED, TOPIC, p, True) for p in range(3)]
    assert [(v.error_code, v.final) for v in first] == [
        (ErrorCode.ELECTION_NOT_NEEDED, True),
        (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, False),
        (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, False)]
    moved = ReplicatedTopic(TOPIC.topic_id, (TOPIC.partitions[0],
                                             ReplicatedPartition((2, 3, 1), 2, 6)))
    later = el.judge(el.PREFERRED, moved, 1, False)
    assert (later.error_code, later.final) == (ErrorCode.NONE, True)


def test_unclean_elections_never_run_and_unknown_partitions() -> None:
    assert el.judge(el.UNCLEAN, TOPIC, 1, True).error_code == ErrorCode.ELECTION_NOT_NEEDED
    assert el.judge(el.UNCLEAN, TOPIC, 2, True).error_code == \
        ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    assert el.judge(el.PREFERRED, TOPIC, 3, True).error_code == \
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert el.judge(el.PREFERRED, None, 0, True).error_code == \
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert el.judge(7, TOPIC, 0, True).error_code == ErrorCode.INVALID_REQUEST


def test_asked_pairs_and_the_response() -> None:
    topics = {"b": TOPIC, "a": ReplicatedTopic(uuid.uuid4(), (TOPIC.partitions[0],))}
    assert el.asked(wire.ElectLeadersRequest(topic_partitions=None), topics) == [
        ("a", 0), ("b", 0), ("b", 1), ("b", 2)]
    req = wire.ElectLeadersRequest(topic_partitions=(
        wire.TopicPartitions("b", (2, 0)), wire.TopicPartitions("x", (0,))))
    pairs = el.asked(req, topics)
    assert pairs == [("b", 2), ("b", 0), ("x", 0)]
    resp = el.build([(t, p, el.judge(el.PREFERRED, topics.get(t), p, True)) for t, p in pairs],
                    2)
    assert [(r.topic, [(x.partition_id, x.error_code) for x in r.partition_result])
            for r in resp.replica_election_results] == [
        ("b", [(2, ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE),
               (0, ErrorCode.ELECTION_NOT_NEEDED)]),
        ("x", [(0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)])]
