"""FindCoordinator (10): every group's coordinator is this node (single node).

Concern: the v0-3 single-key and v4+ batched shapes (notes G10); transaction coordinators are not
offered (no transactions yet: COORDINATOR_NOT_AVAILABLE). Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.kafka.handlers.metadata import BrokerAddress
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.find_coordinator import (
    Coordinator,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
)

__all__ = ["handle"]

_GROUP = 0


def handle(request: FindCoordinatorRequest, version: int, broker: BrokerAddress
           ) -> FindCoordinatorResponse:
    if version >= 4:
        keys = request.coordinator_keys
        coordinators = tuple(_one(key, request.key_type, broker) for key in keys)
        return FindCoordinatorResponse(coordinators=coordinators)
    c = _one(request.key, request.key_type, broker)
    return FindCoordinatorResponse(error_code=c.error_code, error_message=c.error_message,
                                   node_id=c.node_id, host=c.host, port=c.port)


def _one(key: str, key_type: int, broker: BrokerAddress) -> Coordinator:
    if key_type != _GROUP:
        return Coordinator(key=key, node_id=-1, host="", port=-1,
                           error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                           error_message="transactions are not supported")
    if not key:
        return Coordinator(key=key, node_id=-1, host="", port=-1,
                           error_code=ErrorCode.INVALID_GROUP_ID, error_message="empty group id")
    return Coordinator(key=key, node_id=broker.node_id, host=broker.host, port=broker.port,
                       error_code=0, error_message=None)
