"""The internal RPC frame codec: round trips, the header layout, every decode error, frames split
at every byte boundary and many frames in one feed."""

from __future__ import annotations

import struct

import crc32c
import pytest

from redshank.protocol.errors import DecodeError, EncodeError
from redshank.protocol.rpc import (
    HEADER,
    MAX_ERROR_MESSAGE_BYTES,
    BadChecksumError,
    BadHeaderError,
    Frame,
    FrameDecoder,
    FrameKind,
    FrameTooLargeError,
    LocalProtocolError,
    RemoteProtocolError,
    Status,
    TruncatedFrameError,
    encode_frame,
    encode_header,
    error_message,
    error_payload,
)

REQ, RESP, ONE = FrameKind.REQUEST, FrameKind.RESPONSE, FrameKind.ONE_WAY


def _decode_all(data: bytes, **kw: object) -> list[Frame]:
    dec = FrameDecoder(**kw)  # type: ignore[arg-type]
    dec.feed(data)
    frames = list(dec)
    dec.close()
    assert list(dec) == []
    return frames


def _key(f: Frame) -> tuple[FrameKind, int, int, Status, bytes]:
    return f.kind, f.method, f.correlation_id, f.status, bytes(f.payload)


def _with_crc(fields: bytes, payload: bytes = b"") -> bytes:
    crc = crc32c.crc32c(payload, crc32c.crc32c(fields))
    return fields + struct.pack(">I", crc) + payload


def test_header_layout_is_the_documented_one() -> None:
    data = encode_frame(REQ, 0x0102, 0x0A0B0C0D0E0F1011, b"xyz")
    assert len(data) == HEADER + 3 == 27
    assert data[:20] == bytes.fromhex("5253 01 01 0102 0000 0a0b0c0d0e0f1011 00000003")
    assert data[20:24] == struct.pack(">I", crc32c.crc32c(b"xyz", crc32c.crc32c(data[:20])))
    err = encode_frame(RESP, 7, 1, b"boom", Status.HANDLER_ERROR)
    assert err[3] == 0x82 and err[6:8] == b"\x00\x02"


@pytest.mark.parametrize(
    ("kind", "status", "payload"),
    [
        (REQ, Status.OK, b"hello"),
        (RESP, Status.OK, b""),
        (ONE, Status.OK, bytes(range(256)) * 40),
        (RESP, Status.UNKNOWN_METHOD, error_payload("unknown method 9")),
        (RESP, Status.SHUTTING_DOWN, b""),
    ],
)
def test_round_trip(kind: FrameKind, status: Status, payload: bytes) -> None:
    [frame] = _decode_all(encode_frame(kind, 65535, (1 << 64) - 1, payload, status))
    assert _key(frame) == (kind, 65535, (1 << 64) - 1, status, payload)
    assert frame.is_error == (status is not Status.OK)
    assert frame.payload.readonly


def test_header_apart_from_a_memoryview_payload() -> None:
    batch = bytearray(b"record batch bytes" * 100)
    view = memoryview(batch)[10:1010]
    data = encode_header(REQ, 3, 42, view) + bytes(view)
    [frame] = _decode_all(data)
    assert bytes(frame.payload) == bytes(batch[10:1010])
    multi = memoryview(bytearray(64)).cast("Q")  # nbytes, not len, is the payload length
    assert struct.unpack_from(">I", encode_header(REQ, 1, 1, multi), 16)[0] == 64


def test_many_frames_in_one_feed_keep_their_order() -> None:
    frames = [encode_frame(REQ, i % 7, i, bytes([i % 256]) * i) for i in range(200)]
    out = _decode_all(b"".join(frames))
    assert [(f.correlation_id, bytes(f.payload)) for f in out] == [
        (i, bytes([i % 256]) * i) for i in range(200)]


def test_split_at_every_byte_boundary() -> None:
    stream = (encode_frame(REQ, 1, 10, b"abcdefgh") + encode_frame(ONE, 2, 0, b"")
              + encode_frame(RESP, 3, 11, b"\x00" * 33, Status.OK))
    expected = [_key(f) for f in _decode_all(stream)]
    assert len(expected) == 3
    for cut in range(len(stream) + 1):
        for cut2 in range(cut, len(stream) + 1, 7):
            dec = FrameDecoder()
            got = []
            for piece in (stream[:cut], stream[cut:cut2], stream[cut2:]):
                dec.feed(piece)
                got += [_key(f) for f in dec]
            dec.close()
            assert list(dec) == []
            assert got == expected, (cut, cut2)


def test_byte_at_a_time() -> None:
    stream = b"".join(encode_frame(REQ, 5, i, b"p" * i) for i in range(20))
    dec = FrameDecoder()
    got: list[Frame] = []
    for i in range(len(stream)):
        dec.feed(stream[i : i + 1])
        got += list(dec)
    assert [f.correlation_id for f in got] == list(range(20))
    assert dec.buffered_bytes == 0


def test_payload_outlives_later_feeds() -> None:
    dec = FrameDecoder()
    dec.feed(encode_frame(REQ, 1, 1, b"first") + encode_frame(REQ, 1, 2, b"sec"))
    first = dec.next_frame()
    dec.feed(b"x" * 10)  # compaction of the buffer must not touch a frame handed out
    second = dec.next_frame()
    assert first is not None and second is not None
    assert bytes(first.payload) == b"first" and bytes(second.payload) == b"sec"


def test_large_frame_with_a_partial_tail_is_handed_over_whole() -> None:
    # A large frame followed by the start of the next (a stream of appends): the frame is
    # handed out without a copy, the tail carries on in a new buffer.
    big, small = bytes(range(256)) * 4096, b"next frame"
    second = encode_frame(ONE, 2, 0, small)
    dec = FrameDecoder()
    dec.feed(encode_frame(ONE, 1, 0, big) + second[:7])
    first = dec.next_frame()
    assert first is not None and first.payload.readonly and bytes(first.payload) == big
    assert dec.next_frame() is None and dec.buffered_bytes == 7
    dec.feed(second[7:] + b"\0" * 3)
    got = dec.next_frame()
    assert got is not None and (got.method, bytes(got.payload)) == (2, small)
    assert bytes(first.payload) == big and dec.buffered_bytes == 3


def test_too_large_is_rejected_from_the_header_alone() -> None:
    dec = FrameDecoder(max_frame_bytes=1000)
    header = encode_header(REQ, 1, 1, b"x" * 1001)
    with pytest.raises(FrameTooLargeError, match="1001 bytes above max_frame_bytes 1000"):
        dec.feed(header)  # not one payload byte was needed to refuse it
    assert dec.buffered_bytes == 0
    with pytest.raises(FrameTooLargeError):
        dec.feed(b"more")  # dead for good
    ok = FrameDecoder(max_frame_bytes=1000)
    ok.feed(encode_frame(REQ, 1, 1, b"x" * 1000))
    assert ok.next_frame() is not None


def test_huge_declared_length_behind_good_frames() -> None:
    dec = FrameDecoder(max_frame_bytes=100)
    good = encode_frame(REQ, 1, 1, b"ok")
    bad = struct.pack(">HBBHHQI", 0x5253, 1, 1, 1, 0, 2, 0xFFFFFFFF) + b"\0\0\0\0"
    dec.feed(good + bad)  # the bad header is not at the read position yet
    with pytest.raises(FrameTooLargeError):
        list(dec)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (struct.pack(">HBBHHQI", 0x4B41, 1, 1, 1, 0, 1, 0), "bad magic"),
        (struct.pack(">HBBHHQI", 0x5253, 2, 1, 1, 0, 1, 0), "unsupported frame version 2"),
        (struct.pack(">HBBHHQI", 0x5253, 1, 0, 1, 0, 1, 0), "bad flags"),
        (struct.pack(">HBBHHQI", 0x5253, 1, 0x11, 1, 0, 1, 0), "bad flags"),
        (struct.pack(">HBBHHQI", 0x5253, 1, 2, 1, 99, 1, 0), "unknown status 99"),
        (struct.pack(">HBBHHQI", 0x5253, 1, 2, 1, 2, 1, 0), "contradicts"),  # no error bit
        (struct.pack(">HBBHHQI", 0x5253, 1, 0x82, 1, 0, 1, 0), "contradicts"),  # bit, status OK
        (struct.pack(">HBBHHQI", 0x5253, 1, 0x81, 1, 2, 1, 0), "contradicts"),  # erroring request
    ],
)
def test_bad_headers(fields: bytes, match: str) -> None:
    dec = FrameDecoder()
    with pytest.raises(BadHeaderError, match=match):
        dec.feed(_with_crc(fields))
    with pytest.raises(RemoteProtocolError):
        dec.next_frame()


def test_unexpected_kind_for_this_end() -> None:
    dec = FrameDecoder(kinds=frozenset({REQ, ONE}))
    with pytest.raises(BadHeaderError, match="unexpected RESPONSE frame"):
        dec.feed(encode_frame(RESP, 1, 1, b""))


# Method (4-5), correlation id (8-15), CRC (20-23), payload (24-): fields the header check
# accepts whatever their value, so only the CRC can catch the flip.
@pytest.mark.parametrize("flip", [4, 5, 8, 15, 20, 23, 24, 30])
def test_bad_crc_on_a_flipped_bit(flip: int) -> None:
    data = bytearray(encode_frame(REQ, 1, 7, b"payload"))
    data[flip] ^= 0x04
    dec = FrameDecoder()
    dec.feed(bytes(data))
    with pytest.raises(BadChecksumError, match="correlation id"):
        dec.next_frame()
    with pytest.raises(BadChecksumError):
        dec.feed(b"")


@pytest.mark.parametrize("cut", [1, HEADER - 1, HEADER, HEADER + 3])
def test_truncated_at_close(cut: int) -> None:
    data = encode_frame(REQ, 1, 7, b"payload")
    dec = FrameDecoder()
    dec.feed(encode_frame(REQ, 1, 6, b"whole") + data[:cut])
    dec.close()
    assert dec.closed
    assert dec.next_frame() is not None  # the whole frame before the cut is still read
    with pytest.raises(TruncatedFrameError, match="stream ended inside a frame"):
        dec.next_frame()


def test_clean_close_between_frames() -> None:
    dec = FrameDecoder()
    dec.feed(encode_frame(ONE, 1, 0, b""))
    dec.close()
    assert len(list(dec)) == 1 and dec.next_frame() is None
    with pytest.raises(LocalProtocolError, match="feed after close"):
        dec.feed(b"x")


def test_buffered_bytes_are_bounded() -> None:
    dec = FrameDecoder(max_frame_bytes=100, max_buffered_bytes=300)
    frames = encode_frame(REQ, 1, 1, b"x" * 50) * 10  # 740 bytes: the caller does not drain
    with pytest.raises(RemoteProtocolError, match="bytes buffered"):
        dec.feed(frames)
    with pytest.raises(ValueError, match="whole frame"):
        FrameDecoder(max_frame_bytes=1000, max_buffered_bytes=100)


def test_errors_are_the_protocol_layers() -> None:
    assert issubclass(RemoteProtocolError, DecodeError)
    assert issubclass(LocalProtocolError, EncodeError)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((REQ, 1 << 16, 1, b""), "method id"),
        ((REQ, -1, 1, b""), "method id"),
        ((REQ, 1, 1 << 64, b""), "correlation id"),
        ((REQ, 1, 1, b"", Status.HANDLER_ERROR), "carries no status"),
        ((ONE, 1, 1, b"", Status.TOO_LARGE), "carries no status"),
    ],
)
def test_encode_misuse(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        encode_header(*args)  # type: ignore[arg-type]


def test_error_payload_is_short_utf8() -> None:
    long = "é" * 1000
    payload = error_payload(long)
    assert len(payload) == MAX_ERROR_MESSAGE_BYTES
    assert error_message(payload).startswith("é" * 10)
    assert error_message(error_payload("no handler")) == "no handler"
