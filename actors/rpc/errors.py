"""What a caller of the internal RPC client can get instead of a response.

Concern: the outcomes of a call that are not a payload, as exceptions (a call is I/O: it fails
with one). Must not know: frames, sockets, methods.
"""

from __future__ import annotations

from redshank.protocol.rpc import Status

__all__ = ["RpcClosed", "RpcConnectionError", "RpcError", "RpcRemoteError", "RpcTimeout"]


class RpcError(Exception):
    """Base of the internal RPC client's failures."""


class RpcTimeout(RpcError, TimeoutError):
    """The deadline passed (waiting to connect, for send budget, or for the response); a response
    that comes later is dropped. The request may or may not have run on the peer."""

    def __init__(self, message: str, *, method: int | None = None, timeout: float = 0.0) -> None:
        super().__init__(message)
        self.method = method
        self.timeout = timeout


class RpcConnectionError(RpcError, ConnectionError):
    """No connection to the peer (refused, in reconnect backoff), or it died with the call in
    flight; never retried by the client, since the request may have run."""


class RpcClosed(RpcConnectionError):
    """The client was closed (before or while the call was pending)."""


class RpcRemoteError(RpcError):
    """The peer answered with an error status (unknown method, handler error, too large,
    shutting down) and its short message."""

    def __init__(self, method: int, status: Status, message: str) -> None:
        super().__init__(f"rpc method {method}: {status.name}: {message}")
        self.method = method
        self.status = status
        self.message = message
