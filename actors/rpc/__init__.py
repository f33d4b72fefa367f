"""The internal node-to-node RPC transport on a core's event loop: `RpcServer` (one listener per
core, handlers by method id) and `RpcClient` (one per peer address: deadlines, reconnect backoff,
bounded bytes in flight), over the sans-IO frames of `protocol/rpc`."""

from redshank.actors.rpc.backoff import Backoff
from redshank.actors.rpc.client import RpcClient
from redshank.actors.rpc.errors import (
    RpcClosed,
    RpcConnectionError,
    RpcError,
    RpcRemoteError,
    RpcTimeout,
)
from redshank.actors.rpc.server import Handler, RpcServer, rpc_port

__all__ = [
    "Backoff",
    "Handler",
    "RpcClient",
    "RpcClosed",
    "RpcConnectionError",
    "RpcError",
    "RpcRemoteError",
    "RpcServer",
    "RpcTimeout",
    "rpc_port",
]
