"""DescribeCluster (60): the cluster's brokers, its controller and its id.

Concern: answering DescribeCluster from the brokers given (a single node: itself, also the
controller; cluster mode: every active member and group 0's leader, from the controller's
view), and the cluster id. Only the broker
endpoint type exists here: asking for controllers (v1 `endpoint_type` 2) gets
UNSUPPORTED_ENDPOINT_TYPE as from a Kafka broker. `cluster_authorized_operations` stays INT32_MIN
(no ACLs, notes G14). Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.kafka.handlers.metadata import BrokerAddress
from redshank.protocol.messages import describe_cluster as wire

__all__ = ["BROKER_ENDPOINT", "UNSUPPORTED_ENDPOINT_TYPE", "handle"]

BROKER_ENDPOINT = 1
# Kafka's error 119 (KIP-919); the shared ErrorCode table does not list it yet.
UNSUPPORTED_ENDPOINT_TYPE = 119


def handle(request: wire.DescribeClusterRequest, version: int, broker: BrokerAddress,
           cluster_id: str, brokers: tuple[BrokerAddress, ...] = (), controller_id: int = -1
           ) -> wire.DescribeClusterResponse:
    """`brokers` (empty: `broker` alone) and `controller_id` (-1: `broker`'s)."""
    if version >= 1 and request.endpoint_type != BROKER_ENDPOINT:
        return wire.DescribeClusterResponse(
            error_code=UNSUPPORTED_ENDPOINT_TYPE,
            error_message=f"endpoint type {request.endpoint_type} is not served: this node "
                          f"only has broker endpoints (type {BROKER_ENDPOINT})",
            cluster_id=cluster_id)
    listed = brokers or (broker,)
    return wire.DescribeClusterResponse(
        cluster_id=cluster_id, controller_id=controller_id if controller_id >= 0
        else broker.node_id,
        brokers=tuple(wire.DescribeClusterBroker(b.node_id, b.host, b.port) for b in listed))
