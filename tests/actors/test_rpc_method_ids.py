"""Every RPC method id served on a core's RPC server is distinct: node-level calls (1-99), the
controller's (0x01xx), the partitions' Raft traffic (0x02xx) and the node views (0x03xx: the
leaders' views for Metadata) share one server per core."""

from __future__ import annotations

from redshank.actors.controller_frontend import ControllerMethod
from redshank.actors.node_rpc import NodeMethod
from redshank.actors.peer_views import (
    ALTER_CONFIGS_METHOD,
    DESCRIBE_METHOD,
    LEADERS_METHOD,
    PING_METHOD,
    PRODUCER_ID_METHOD,
    TOPIC_CONFIGS_METHOD,
)
from redshank.actors.raft_messenger import RaftMethod
from redshank.actors.rpc import RpcServer


def test_method_ids_are_distinct_and_in_their_ranges() -> None:
    ids = [int(m) for enum in (NodeMethod, ControllerMethod, RaftMethod) for m in enum]
    views = [LEADERS_METHOD, DESCRIBE_METHOD, PRODUCER_ID_METHOD, TOPIC_CONFIGS_METHOD,
             ALTER_CONFIGS_METHOD, PING_METHOD]
    ids += views
    assert len(ids) == len(set(ids))
    assert all(1 <= int(m) <= 99 for m in NodeMethod)
    assert all(0x0100 <= int(m) <= 0x01FF for m in ControllerMethod)
    assert all(0x0200 <= int(m) <= 0x02FF for m in RaftMethod)
    assert all(0x0300 <= m <= 0x03FF for m in views)


def test_a_closed_owner_unregisters_its_methods() -> None:
    server = RpcServer("127.0.0.1", 0)
    server.register(RaftMethod.MESSAGES, lambda payload: None)
    server.unregister(RaftMethod.MESSAGES)
    assert server.handler(RaftMethod.MESSAGES) is None
    server.register(RaftMethod.MESSAGES, lambda payload: None)  # a new owner may take it
    assert server.handler(RaftMethod.MESSAGES) is not None
