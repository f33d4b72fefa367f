"""Writing one RPC frame into an asyncio transport, shared by the client and the server.

Concern: header and payload into the transport with the fewest copies and syscalls. Must not
know: connections, pending calls, handlers.
"""

from __future__ import annotations

import asyncio

from redshank.protocol.rpc import Buffer, FrameKind, Status, encode_header

__all__ = ["JOIN_BELOW", "write_frame"]

# Below this a payload is joined to its header (one write, one syscall); above, written apart so
# a large payload (a record batch's memoryview) is not copied on its way to the transport.
JOIN_BELOW = 16 * 1024


def write_frame(transport: asyncio.WriteTransport, kind: FrameKind, method: int,
                correlation_id: int, payload: Buffer, status: Status = Status.OK) -> None:
    """Header, then payload, into the transport (the payload itself is not copied here)."""
    header = encode_header(kind, method, correlation_id, payload, status)
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if size < JOIN_BELOW:
        transport.write(header + payload)
    else:
        transport.write(header)
        transport.write(payload)
