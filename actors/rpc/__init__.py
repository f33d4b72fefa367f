"""The internal node-to-node RPC transport on a core's event loop (being built: its reconnect
backoff and errors first)."""

from redshank.actors.rpc.backoff import Backoff
from redshank.actors.rpc.errors import (
    RpcClosed,
    RpcConnectionError,
    RpcError,
    RpcRemoteError,
    RpcTimeout,
)

__all__ = [
    "Backoff",
    "RpcClosed",
    "RpcConnectionError",
    "RpcError",
    "RpcRemoteError",
    "RpcTimeout",
]
