"""Topic records: name validation, the shard table's spread over cores, the stored encoding."""

from __future__ import annotations

import uuid

from redshank.cluster.kafka import (
    TopicInfo,
    TopicTable,
    assign_cores,
    decode_topic,
    encode_topic,
    validate_topic_name,
)


def test_names() -> None:
    assert validate_topic_name("orders.v1_x-2") is None
    for bad in ("", ".", "..", "a b", "a/b", "x" * 250, None):
        assert validate_topic_name(bad) is not None, bad


def test_assign_cores_is_stable_and_uses_every_core() -> None:
    cores = assign_cores("orders", 6, 2)
    assert cores == assign_cores("orders", 6, 2)
    assert sorted(set(cores)) == [0, 1] and cores.count(0) == 3
    assert assign_cores("x", 3, 1) == (0, 0, 0)


def test_encode_roundtrip_and_table() -> None:
    info = TopicInfo("t", uuid.uuid4(), (1, 0, 1), (("retention.ms", "5"),))
    assert decode_topic(encode_topic(info)) == info
    assert info.core_of(2) == 1 and info.core_of(3) is None and info.core_of(-1) is None
    table = TopicTable([info])
    assert table.get("t") is info and table.names() == ["t"] and len(table) == 1
    assert TopicInfo("d", uuid.uuid4(), (0,)).max_message_bytes == 1048588
