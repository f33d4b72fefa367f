"""HELLO: its bytes both ways, bad bytes as a typed error, and the caller's verdict."""

from __future__ import annotations

import uuid

import pytest

from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.node_hello import (
    Hello,
    HelloDecodeError,
    PeerVerdict,
    check_peer,
    decode_hello,
    encode_hello,
    refusal_message,
)
from redshank.cluster.raft.types import NodeId

U1, U2, C1, C2 = (uuid.UUID(int=i) for i in (1, 2, 11, 12))


def hello(node: int = 1, incarnation: uuid.UUID = U1, cluster: uuid.UUID | None = None,
          cores: int = 2) -> Hello:
    return Hello(NodeId(node), incarnation, cluster, cores, NetAddress("127.0.0.1", 9092),
                 NetAddress("node-1.example", 33145))


@pytest.mark.parametrize("cluster", [None, C1])
def test_round_trip(cluster: uuid.UUID | None) -> None:
    h = hello(cluster=cluster)
    assert decode_hello(encode_hello(h)) == h
    assert decode_hello(memoryview(encode_hello(h))) == h


def test_every_truncation_and_trailing_bytes_are_decode_errors() -> None:
    data = encode_hello(hello(cluster=C1))
    for cut in range(len(data)):
        with pytest.raises(HelloDecodeError):
            decode_hello(data[:cut])
    with pytest.raises(HelloDecodeError, match="1 bytes after"):
        decode_hello(data + b"\0")


def test_unknown_version_and_out_of_range_fields() -> None:
    data = encode_hello(hello())
    with pytest.raises(HelloDecodeError, match="unknown hello version 2"):
        decode_hello(b"\x02" + data[1:])
    with pytest.raises(HelloDecodeError, match="out of range"):
        decode_hello(encode_hello(hello(cores=0)))
    with pytest.raises(HelloDecodeError, match="out of range"):
        decode_hello(encode_hello(hello(node=-1)))


def test_unencodable_hello_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_hello(hello(node=2**31))


@pytest.mark.parametrize(("me", "peer", "verdict"), [
    (hello(1), hello(1), PeerVerdict.SELF),
    (hello(1, cluster=C1), hello(1, cluster=C1), PeerVerdict.SELF),
    (hello(1), hello(1, U2), PeerVerdict.DUPLICATE_NODE_ID),
    (hello(1, cluster=C1), hello(1, U2, C2), PeerVerdict.DUPLICATE_NODE_ID),
    (hello(1, cluster=C1), hello(2, U2, C2), PeerVerdict.CLUSTER_MISMATCH),
    (hello(1, cluster=C1), hello(2, U2, C1), PeerVerdict.PEER),
    (hello(1), hello(2, U2, C2), PeerVerdict.PEER),  # not in a cluster yet: no mismatch
    (hello(1, cluster=C1), hello(2, U2), PeerVerdict.PEER),
    (hello(1), hello(2, U2), PeerVerdict.PEER),
])
def test_verdicts(me: Hello, peer: Hello, verdict: PeerVerdict) -> None:
    assert check_peer(me, peer) is verdict


def test_refusal_messages() -> None:
    seed = NetAddress("127.0.0.1", 33145)
    dup = refusal_message(PeerVerdict.DUPLICATE_NODE_ID, hello(1), hello(1, U2), seed)
    assert dup == (f"node id 1 is already used by the node at 127.0.0.1:33145 (node uuid {U2}, "
                   f"ours {U1}): duplicate_node_id")
    mismatch = refusal_message(PeerVerdict.CLUSTER_MISMATCH, hello(1, cluster=C1),
                               hello(2, U2, C2), seed)
    assert mismatch == (f"the node at 127.0.0.1:33145 (node 2) belongs to cluster {C2}, this "
                        f"node to {C1}: cluster_mismatch")
    with pytest.raises(ValueError, match="PEER is no refusal"):
        refusal_message(PeerVerdict.PEER, hello(1), hello(2), seed)
