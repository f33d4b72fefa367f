"""Writing RPC frames into an asyncio transport, shared by the client and the server.

Concern: header and payload into the transport with the fewest copies and syscalls. Small frames
written during one loop turn are corked and leave as one transport write at the end of the turn
(pipelined calls and their responses would otherwise cost a `send` syscall each, the largest
single cost measured); a large payload (a record batch's memoryview) is written apart, uncopied,
after whatever was corked before it, so order is kept. Must not know: connections, pending
calls, handlers.
"""

from __future__ import annotations

import asyncio

from redshank.protocol.rpc import HEADER, Buffer, FrameKind, Status, encode_header

__all__ = ["FLUSH_AT", "JOIN_BELOW", "FrameWriter"]

# Below this a payload is corked with its header (copied once, by the join); above, written
# apart so it is not copied on its way to the transport.
JOIN_BELOW = 16 * 1024
# Corked bytes past this are handed over at once: the transport's pause_writing then stops a
# caller that writes without yielding, as it would without the cork.
FLUSH_AT = 64 * 1024


class FrameWriter:
    """One per connection, on its loop; lives as long as its transport."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:  # on the running loop
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._parts: list[bytes] = []
        self._corked = 0
        self._scheduled = False

    @property
    def corked_bytes(self) -> int:
        """Bytes written this loop turn and not yet handed to the transport."""
        return self._corked

    def write(self, kind: FrameKind, method: int, correlation_id: int, payload: Buffer,
              status: Status = Status.OK) -> None:
        header = encode_header(kind, method, correlation_id, payload, status)
        size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
        if size >= JOIN_BELOW:
            self.flush()
            self.transport.write(header)
            self.transport.write(payload)
            return
        self._parts.append(header)
        # A caller's bytearray or view may change once we return: small ones are copied now.
        self._parts.append(payload if isinstance(payload, bytes) else bytes(payload))
        self._corked += HEADER + size
        if self._corked >= FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn_ended)

    def _turn_ended(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Hand what is corked to the transport now (before a close, so it is not lost)."""
        if not self._parts:
            return
        data = b"".join(self._parts)
        self._parts.clear()
        self._corked = 0
        if not self.transport.is_closing():
            self.transport.write(data)
