"""The identity record of a data directory: first start, restarts, a refused id, damaged bytes."""

from __future__ import annotations

import json
import uuid

import pytest

from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.node_identity import (
    IdentityFileError,
    IdentityRefused,
    NodeIdentity,
    decode_identity,
    encode_identity,
    resolve_identity,
)
from redshank.cluster.raft.types import NodeId

U1 = uuid.UUID(int=1)
U2 = uuid.UUID(int=2)
SEEDS = (NetAddress("127.0.0.1", 33145), NetAddress("10.0.0.2", 33145))


def test_first_start_takes_the_new_incarnation_and_no_cluster() -> None:
    got = resolve_identity(None, 3, SEEDS, U1)
    assert got == NodeIdentity(NodeId(3), U1, SEEDS, None)


def test_restart_keeps_incarnation_and_cluster_and_takes_the_new_seeds() -> None:
    stored = NodeIdentity(NodeId(3), U1, SEEDS, U2)
    got = resolve_identity(stored, 3, SEEDS[:1], uuid.UUID(int=9))
    assert got == NodeIdentity(NodeId(3), U1, SEEDS[:1], U2)


def test_another_node_id_is_refused_with_both_ids_and_the_dir() -> None:
    got = resolve_identity(NodeIdentity(NodeId(3), U1), 5, (), U2)
    assert got == IdentityRefused(NodeId(3), NodeId(5))
    assert isinstance(got, IdentityRefused)
    assert got.message("/data/x") == "data dir /data/x belongs to node 3, started as node 5"


@pytest.mark.parametrize("cluster", [None, U2])
def test_round_trip(cluster: uuid.UUID | None) -> None:
    identity = NodeIdentity(NodeId(7), U1, SEEDS, cluster)
    data = encode_identity(identity)
    assert decode_identity(data) == identity
    record = json.loads(data)
    assert record["cluster_uuid"] == ("" if cluster is None else str(cluster))
    assert record["node_uuid"] == str(U1)
    assert record["seeds"] == ["127.0.0.1:33145", "10.0.0.2:33145"]


def _record(**changes: object) -> bytes:
    record: dict[str, object] = {"version": 1, "node_id": 1, "node_uuid": str(U1),
                                 "seeds": [], "cluster_uuid": ""}
    record.update(changes)
    return json.dumps(record).encode()


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff", "not JSON"),
    (b"{", "not JSON"),
    (b"[1]", "not a JSON object"),
    (_record(version=2), "unknown version 2"),
    (_record(node_id=-1), "bad node_id -1"),
    (_record(node_id=2**31), "bad node_id"),
    (_record(node_id=True), "bad node_id True"),
    (_record(node_id="1"), "bad node_id '1'"),
    (_record(node_uuid=""), "empty node_uuid"),
    (_record(node_uuid="nope"), "bad node_uuid 'nope'"),
    (_record(node_uuid=5), "bad node_uuid 5"),
    (_record(cluster_uuid="x"), "bad cluster_uuid 'x'"),
    (_record(seeds="a:1"), "seeds is not a list"),
    (_record(seeds=["a"]), "bad seed 'a'"),
    (_record(seeds=["a:0"]), "bad seed 'a:0'"),
    (_record(seeds=[1]), "bad seed 1"),
])
def test_damaged_files_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(IdentityFileError, match=message):
        decode_identity(data)
