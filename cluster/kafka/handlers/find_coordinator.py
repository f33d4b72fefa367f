"""FindCoordinator (10): which broker coordinates each group or transactional id.

Concern: the v0-3 single-key and v4+ batched shapes (notes G10), and the error per key: a group
or transactional id whose coordinator is not known now (cluster mode: no leader of its
`__consumer_offsets` / `__transaction_state` partition yet) is COORDINATOR_NOT_AVAILABLE, which
clients retry. Single node: every coordinator is this node. Must not know: actors, sockets, how
the coordinator is found.
"""

from __future__ import annotations

from collections.abc import Callable

from redshank.cluster.group import partition_for
from redshank.cluster.kafka.handlers.metadata import BrokerAddress, ClusterView
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.find_coordinator import (
    Coordinator,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
)

__all__ = ["Locate", "group_keys", "handle", "locate_in", "txn_keys"]

_GROUP = 0
_TRANSACTION = 1
# A group id -> the broker that coordinates it now, None while none is known.
Locate = Callable[[str], BrokerAddress | None]


def group_keys(request: FindCoordinatorRequest, version: int) -> tuple[str, ...]:
    """The non-empty group ids asked (the ones whose coordinator must be located)."""
    if request.key_type != _GROUP:
        return ()
    keys = request.coordinator_keys if version >= 4 else (request.key,)
    return tuple(k for k in keys if k)


def txn_keys(request: FindCoordinatorRequest, version: int) -> tuple[str, ...]:
    """The non-empty transactional ids asked."""
    if request.key_type != _TRANSACTION:
        return ()
    keys = request.coordinator_keys if version >= 4 else (request.key,)
    return tuple(k for k in keys if k)


def locate_in(view: ClusterView, topic: str) -> Locate:
    """Cluster mode: a group's (or transactional id's) coordinator is the leader of its
    partition of `topic` (Kafka's `partition_for`, the same rule for both) as `view` gives it
    (Metadata's leader); none while that partition has no leader, or its leader is not an
    active broker of `view`."""
    brokers = {b.node_id: b for b in view.brokers}
    found = view.topics.get(topic)
    parts = () if found is None else found.partitions

    def locate(key: str) -> BrokerAddress | None:
        if not parts:
            return None
        leader = parts[partition_for(key, len(parts))].leader
        return brokers.get(leader) if leader > 0 else None

    return locate


def handle(request: FindCoordinatorRequest, version: int, broker: BrokerAddress,
           locate: Locate | None = None) -> FindCoordinatorResponse:
    """`locate`: where each key's coordinator is (None: this node, `broker`, for all); the
    request's key type says which coordinators (groups' or transactions')."""
    where: Locate = locate if locate is not None else (lambda _key: broker)
    if version >= 4:
        keys = request.coordinator_keys
        coordinators = tuple(_one(key, request.key_type, where) for key in keys)
        return FindCoordinatorResponse(coordinators=coordinators)
    c = _one(request.key, request.key_type, where)
    return FindCoordinatorResponse(error_code=c.error_code, error_message=c.error_message,
                                   node_id=c.node_id, host=c.host, port=c.port)


def _one(key: str, key_type: int, locate: Locate) -> Coordinator:
    if key_type not in (_GROUP, _TRANSACTION) or (key_type == _TRANSACTION and not key):
        return Coordinator(key=key, node_id=-1, host="", port=-1,
                           error_code=ErrorCode.INVALID_REQUEST,
                           error_message="empty transactional id" if key_type == _TRANSACTION
                           else f"unknown key type {key_type}")
    if key_type == _GROUP and not key:
        return Coordinator(key=key, node_id=-1, host="", port=-1,
                           error_code=ErrorCode.INVALID_GROUP_ID, error_message="empty group id")
    broker = locate(key)
    if broker is None:
        return Coordinator(key=key, node_id=-1, host="", port=-1,
                           error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                           error_message="the coordinator is not known yet")
    return Coordinator(key=key, node_id=broker.node_id, host=broker.host, port=broker.port,
                       error_code=0, error_message=None)
