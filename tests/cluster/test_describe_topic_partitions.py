"""DescribeTopicPartitions (KIP-966) built from a Metadata answer: sorting, the cursor, the
partition limit and its next cursor, unknown topics, and a cursor outside the request."""

from __future__ import annotations

import uuid

from redshank.cluster.kafka.handlers import describe_topic_partitions as dtp
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import describe_topic_partitions as wire
from redshank.protocol.messages import metadata as md

IDS = {n: uuid.uuid4() for n in ("a", "b", "c")}


def _answer(*missing: str) -> md.MetadataResponse:
    topics = [md.MetadataResponseTopic(
        name=n, topic_id=IDS[n], partitions=tuple(md.MetadataResponsePartition(
            partition_index=p, leader_id=1, leader_epoch=2, replica_nodes=(1,), isr_nodes=(1,))
            for p in reversed(range(3)))) for n in ("c", "a", "b")]
    topics += [md.MetadataResponseTopic(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=n)
               for n in missing]
    return md.MetadataResponse(topics=tuple(topics))


def _request(*names: str, limit: int = 2000, cursor: tuple[str, int] | None = None
             ) -> wire.DescribeTopicPartitionsRequest:
    return wire.DescribeTopicPartitionsRequest(
        topics=tuple(wire.TopicRequest(n) for n in names), response_partition_limit=limit,
        cursor=None if cursor is None else wire.DescribeTopicPartitionsRequestCursor(*cursor))


def _shape(resp: wire.DescribeTopicPartitionsResponse
           ) -> tuple[list[tuple[str | None, int, list[int]]], tuple[str, int] | None]:
    back = wire.DescribeTopicPartitionsResponse.decode(resp.encode(0), 0)
    cursor = back.next_cursor
    return ([(t.name, t.error_code, [p.partition_index for p in t.partitions])
             for t in back.topics],
            None if cursor is None else (cursor.topic_name, cursor.partition_index))


def test_all_topics_sorted_and_whole() -> None:
    req = _request()
    assert dtp.metadata_request(req).topics is None
    assert not dtp.metadata_request(req).allow_auto_topic_creation
    assert _shape(dtp.build(req, _answer())) == (
        [("a", 0, [0, 1, 2]), ("b", 0, [0, 1, 2]), ("c", 0, [0, 1, 2])], None)


def test_limit_and_cursor_page_through() -> None:
    first = dtp.build(_request(limit=4), _answer())
    assert _shape(first) == ([("a", 0, [0, 1, 2]), ("b", 0, [0])], ("b", 1))
    second = dtp.build(_request(limit=4, cursor=("b", 1)), _answer())
    assert _shape(second) == ([("b", 0, [1, 2]), ("c", 0, [0, 1])], ("c", 2))
    edge = dtp.build(_request(limit=3), _answer())
    assert _shape(edge) == ([("a", 0, [0, 1, 2])], ("b", 0))


def test_unknown_topics_and_a_cursor_outside_the_request() -> None:
    resp = dtp.build(_request("zz", "a"), _answer("zz"))
    assert _shape(resp) == ([("a", 0, [0, 1, 2]), ("zz", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                                   [])], None)
    bad = _request("a", cursor=("b", 0))
    assert dtp.refused(bad) is not None
    assert _shape(dtp.invalid(bad)) == ([("a", ErrorCode.INVALID_REQUEST, [])], None)
