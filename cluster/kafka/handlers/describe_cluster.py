"""DescribeCluster (60): this node as the cluster's only broker and its controller.

Concern: answering DescribeCluster from the node's address and cluster id. Only the broker
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
           cluster_id: str) -> wire.DescribeClusterResponse:
    if version >= 1 and request.endpoint_type != BROKER_ENDPOINT:
        return wire.DescribeClusterResponse(
            error_code=UNSUPPORTED_ENDPOINT_TYPE,
            error_message=f"endpoint type {request.endpoint_type} is not served: this node "
                          f"only has broker endpoints (type {BROKER_ENDPOINT})",
            cluster_id=cluster_id)
    return wire.DescribeClusterResponse(
        cluster_id=cluster_id, controller_id=broker.node_id,
        brokers=(wire.DescribeClusterBroker(broker.node_id, broker.host, broker.port),))
