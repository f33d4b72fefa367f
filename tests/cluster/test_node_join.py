"""How a node joins its cluster (`cluster/node_join.py`): who votes, who bootstraps, when to
register, the voters record's bytes and the controller view."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from redshank.cluster.controller import ControllerStm, NetAddress, NodeInfo, NodeState
from redshank.cluster.node_hello import Hello
from redshank.cluster.node_join import (
    VotersFileError,
    bootstrap_command,
    controller_view,
    decode_voters,
    encode_voters,
    is_voter,
    needs_register,
    register_command,
    should_bootstrap,
)
from redshank.cluster.raft.types import NO_NODE, Index, NodeId


def hello(n: int) -> Hello:
    return Hello(NodeId(n), uuid.UUID(int=n), None, 2, NetAddress("127.0.0.1", 9090 + n),
                 NetAddress("127.0.0.1", 33000 + 100 * n))


VOTERS = tuple(register_command(hello(n)) for n in (3, 1, 2))


def test_a_node_votes_when_one_of_its_addresses_is_a_seed() -> None:
    seeds = (NetAddress("10.0.0.1", 33145), NetAddress("10.0.0.2", 33145))
    assert is_voter({NetAddress("0.0.0.0", 33145), NetAddress("10.0.0.2", 33145)}, seeds)
    assert not is_voter({NetAddress("10.0.0.3", 33145)}, seeds)
    assert not is_voter({NetAddress("10.0.0.1", 33146)}, seeds)


def test_only_the_lowest_voter_bootstraps_and_only_while_no_cluster_is_known() -> None:
    cluster = uuid.uuid4()
    assert should_bootstrap(NodeId(1), VOTERS, None, None)
    assert not should_bootstrap(NodeId(2), VOTERS, None, None)
    assert not should_bootstrap(NodeId(1), VOTERS, cluster, None)  # identity knows it
    assert not should_bootstrap(NodeId(1), VOTERS, None, cluster)  # the stm knows it
    assert not should_bootstrap(NodeId(1), (), None, None)


def test_bootstrap_names_every_voter_in_id_order() -> None:
    cluster = uuid.uuid4()
    cmd = bootstrap_command(cluster, VOTERS)
    assert cmd.cluster_uuid == cluster
    assert [n.node_id for n in cmd.nodes] == [1, 2, 3]
    assert cmd.nodes[0] == register_command(hello(1))


def test_register_when_absent_or_changed_not_when_it_would_be_refused() -> None:
    me = register_command(hello(4))
    info = NodeInfo(me.node_id, me.incarnation, me.rpc_addr, me.kafka_addr, me.cores)
    assert needs_register(None, me)
    assert not needs_register(info, me)
    assert needs_register(dataclasses.replace(info, kafka_addr=NetAddress("h", 1)), me)
    assert needs_register(dataclasses.replace(info, cores=1), me)
    assert not needs_register(dataclasses.replace(info, incarnation=uuid.uuid4()), me)
    assert not needs_register(dataclasses.replace(info, state=NodeState.DECOMMISSIONED,
                                                  cores=1), me)


def test_voters_record_round_trips_and_refuses_damage() -> None:
    decoded = decode_voters(encode_voters(VOTERS))
    assert decoded == tuple(sorted(VOTERS, key=lambda v: v.node_id))
    for bad in (b"", b"{}", b'{"version": 1, "voters": []}', b"\xff",
                b'{"version": 1, "voters": [{"node_id": 1}]}',
                encode_voters(VOTERS[:1] * 2)):
        with pytest.raises(VotersFileError):
            decode_voters(bad)


def test_controller_view_lists_members_and_leader() -> None:
    stm = ControllerStm()
    view = controller_view(NodeId(2), VOTERS, stm, NO_NODE, 0, 0)
    assert view["cluster_uuid"] == "" and view["leader"] is None and view["members"] == []
    cluster = uuid.uuid4()
    assert stm.apply(Index(1), bootstrap_command(cluster, VOTERS)).ok
    view = controller_view(NodeId(2), VOTERS, stm, NodeId(3), 4, 1)
    assert view["cluster_uuid"] == str(cluster)
    assert (view["leader"], view["term"], view["applied"], view["voters"]) == (3, 4, 1, [1, 2, 3])
    assert [m["node_id"] for m in view["members"]] == [1, 2, 3]
    assert view["members"][0] == {"node_id": 1, "node_uuid": str(uuid.UUID(int=1)),
                                  "rpc": "127.0.0.1:33100", "kafka": "127.0.0.1:9091",
                                  "cores": 2, "state": "active"}
    assert view["topics"] == 0
