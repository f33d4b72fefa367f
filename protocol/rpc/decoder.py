"""The incremental decoder of an RPC frame stream, sans-IO: bytes in, `Frame`s out.

    decoder = FrameDecoder(max_frame_bytes=..., kinds=frozenset({FrameKind.RESPONSE}))
    decoder.feed(chunk)          # raises RemoteProtocolError on a bad header as soon as it lands
    for frame in decoder:        # every complete frame buffered so far
        ...
    decoder.close()              # end of stream; the next read raises TruncatedFrameError if a
    for frame in decoder: ...    # partial frame is left

Bounds: a header is checked the moment its 24 bytes are buffered, so a declared length above
`max_frame_bytes` (or a bad magic, version, flag or status) fails before a byte of its payload is
kept; the bytes buffered never exceed `max_buffered_bytes` (one whole frame plus a read's worth of
pipelined bytes by default). Any `RemoteProtocolError` leaves the decoder dead: every later call
raises again. A frame's payload is its own memory (the buffer is handed over when the frame fills
it, copied once otherwise), so it outlives the next `feed`.

Must not know: sockets, transports, clocks, handlers; it never logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

from redshank.protocol.rpc.errors import (
    BadChecksumError,
    BadHeaderError,
    FrameTooLargeError,
    LocalProtocolError,
    RemoteProtocolError,
    TruncatedFrameError,
)
from redshank.protocol.rpc.frame import (
    CRC_FIELD,
    DEFAULT_MAX_FRAME_BYTES,
    ERROR_FLAG,
    FIELDS,
    HEADER,
    KIND_MASK,
    KINDS,
    MAGIC,
    STATUSES,
    VERSION,
    Buffer,
    Frame,
    FrameKind,
    Status,
    header_crc,
)

__all__ = ["FrameDecoder"]

_SLACK = 1 << 20  # pipelined bytes a read may bring beyond one whole frame


class FrameDecoder:
    def __init__(
        self,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        kinds: frozenset[FrameKind] = frozenset(FrameKind),
        max_buffered_bytes: int | None = None,
    ) -> None:
        if max_frame_bytes < 0:
            raise ValueError(f"max_frame_bytes {max_frame_bytes} is negative")
        self.max_frame_bytes = max_frame_bytes
        self.kinds = kinds  # the frame kinds this end accepts (a server takes no responses)
        self.max_buffered_bytes = (
            max_buffered_bytes if max_buffered_bytes is not None
            else HEADER + max_frame_bytes + _SLACK
        )
        if self.max_buffered_bytes < HEADER + max_frame_bytes:
            raise ValueError("max_buffered_bytes must hold at least one whole frame")
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._dead: RemoteProtocolError | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf) - self._pos

    @property
    def closed(self) -> bool:
        return self._eof

    def feed(self, data: Buffer) -> None:
        self._check_alive()
        if self._eof:
            raise LocalProtocolError("feed after close")
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if not size:
            return
        if self.buffered_bytes + size > self.max_buffered_bytes:
            self._fail(RemoteProtocolError(
                f"more than {self.max_buffered_bytes} bytes buffered: frames not drained"))
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        self._payload_size()  # reject a bad header as soon as it is here

    def close(self) -> None:
        """The peer's end of stream. Frames already whole can still be read; a partial one makes
        the read after them raise `TruncatedFrameError`."""
        self._eof = True

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def next_frame(self) -> Frame | None:
        """The next whole frame, or None until more bytes are fed."""
        self._check_alive()
        size = self._payload_size()
        if size is None or self.buffered_bytes < HEADER + size:
            if self._eof and self.buffered_bytes:
                self._fail(TruncatedFrameError(
                    f"stream ended inside a frame ({self.buffered_bytes} bytes buffered)"))
            return None
        start, end = self._pos, self._pos + HEADER + size
        frame: bytes | bytearray
        if start == 0 and end == len(self._buf):
            # One frame per read, or a large frame that arrived alone: hand the buffer over.
            frame, self._buf = self._buf, bytearray()
            self._pos = 0
        elif len(self._buf) - end < end - start:
            # A frame followed by less than itself (a stream of large frames): hand the buffer
            # over and copy the tail, not the frame. Nothing writes the old buffer again.
            whole, self._buf = self._buf, bytearray()
            with memoryview(whole) as view:
                self._buf += view[end:]
                frame_view = view[start:end].toreadonly()
            self._pos = 0
            return self._frame(frame_view)
        else:
            with memoryview(self._buf) as view:
                frame = bytes(view[start:end])
            self._pos = end
        return self._frame(memoryview(frame).toreadonly())

    # -- internals --------------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._dead is not None:
            raise type(self._dead)(f"decoder unusable after: {self._dead}")

    def _fail(self, exc: RemoteProtocolError) -> NoReturn:
        self._dead = exc
        self._buf = bytearray()
        self._pos = 0
        raise exc

    def _payload_size(self) -> int | None:
        """The payload length of the frame at the read position, its header checked; None while
        fewer than `HEADER` bytes are buffered."""
        if self.buffered_bytes < HEADER:
            return None
        magic, version, flags, method, status, _cid, size = FIELDS.unpack_from(
            self._buf, self._pos)
        if magic != MAGIC:
            self._fail(BadHeaderError(f"bad magic {magic:#06x} (expected {MAGIC:#06x})"))
        if version != VERSION:
            self._fail(BadHeaderError(f"unsupported frame version {version}"))
        kind = flags & KIND_MASK
        if flags & ~(KIND_MASK | ERROR_FLAG) or kind == 0:
            self._fail(BadHeaderError(f"bad flags {flags:#04x}"))
        if KINDS[kind] not in self.kinds:
            self._fail(BadHeaderError(f"unexpected {KINDS[kind].name} frame"))
        if status not in STATUSES:
            self._fail(BadHeaderError(f"unknown status {status}"))
        if bool(flags & ERROR_FLAG) != (status != Status.OK) or (
            status != Status.OK and kind != FrameKind.RESPONSE
        ):
            self._fail(BadHeaderError(f"status {status} contradicts flags {flags:#04x}"))
        if size > self.max_frame_bytes:
            self._fail(FrameTooLargeError(
                f"frame of {size} bytes above max_frame_bytes {self.max_frame_bytes}"
                f" (method {method})"))
        return int(size)

    def _frame(self, view: memoryview) -> Frame:
        _magic, _version, flags, method, status, cid, _size = FIELDS.unpack_from(view, 0)
        (crc,) = CRC_FIELD.unpack_from(view, FIELDS.size)
        payload = view[HEADER:]
        if header_crc(view[: FIELDS.size], payload) != crc:
            self._fail(BadChecksumError(f"bad CRC32C (method {method}, correlation id {cid})"))
        return Frame(KINDS[flags & KIND_MASK], method, cid, STATUSES[status], payload)
