"""metadata.encode_view / decode_view: a node without a controller replica gets the seeds'
`ClusterView` back exactly; the ISR a leader reported replaces the replicas in the response; a
replica on a node not heard from is offline and out of the ISR."""

from __future__ import annotations

import uuid

import pytest

from redshank.cluster.kafka.handlers.metadata import (
    BrokerAddress,
    ClusterView,
    MetadataQuery,
    ReplicatedPartition,
    ReplicatedTopic,
    decode_view,
    encode_view,
    with_cluster,
)
from redshank.protocol.messages.metadata import MetadataResponse

VIEW = ClusterView(
    (BrokerAddress(1, "h1", 9092), BrokerAddress(2, "h2", 9093)), 2,
    {"t": ReplicatedTopic(uuid.UUID(int=7), (
        ReplicatedPartition((1, 2), 1, 4, (1,)),
        ReplicatedPartition((2, 1), -1, -1, None),
        ReplicatedPartition((3, 1, 2), 1, 5, (1, 2, 3), (3,))))})


def test_a_view_survives_its_encoding() -> None:
    assert decode_view(encode_view(VIEW)) == VIEW
    assert decode_view(encode_view(ClusterView((), -1, {}))) == ClusterView((), -1, {})


@pytest.mark.parametrize("raw", [b"", b"{}", b'{"brokers": [], "controller": 1}', b"[1]"])
def test_bad_bytes_raise(raw: bytes) -> None:
    with pytest.raises((ValueError, KeyError, TypeError, IndexError)):
        decode_view(raw)


def test_isr_is_the_leaders_report_else_the_replicas() -> None:
    resp = with_cluster(MetadataResponse(), MetadataQuery(("t",), ()), VIEW)
    (topic,) = resp.topics
    assert [p.isr_nodes for p in topic.partitions] == [(1,), (2, 1), (1, 2, 3)]
    assert [p.leader_epoch for p in topic.partitions] == [4, -1, 5]
    assert [p.offline_replicas for p in topic.partitions] == [(), (), (3,)]


def test_a_dead_nodes_replicas_are_offline_and_out_of_the_isr() -> None:
    known = ReplicatedPartition((1, 2, 3), 1, 4, (1, 2, 3))
    assert known.without(frozenset()) is known
    assert known.without(frozenset({5})) is known  # not a replica's node
    assert known.without(frozenset({3})) == ReplicatedPartition((1, 2, 3), 1, 4, (1, 2), (3,))
    # An ISR not known here: the live replicas, not every replica.
    unknown = ReplicatedPartition((2, 3, 1), 2, 4, None)
    assert unknown.without(frozenset({2, 3})) == ReplicatedPartition((2, 3, 1), 2, 4, (1,),
                                                                      (2, 3))
    # An old encoding (no offline list) still decodes.
    raw = encode_view(ClusterView((), 1, {"t": ReplicatedTopic(uuid.UUID(int=1), (known,))}))
    assert decode_view(raw.replace(b",[]]", b"]")).topics["t"].partitions == (known,)
