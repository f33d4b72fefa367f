"""The admin HTTP API of a node: status, node, cluster health, partitions, actors, and Prometheus
metrics over the per-core stats blocks (see README.md)."""

from ._metrics import NodeCollector
from ._server import AdminConfig, AdminServer, bind_admin_socket

__all__ = ["AdminConfig", "AdminServer", "NodeCollector", "bind_admin_socket"]
