"""The RPC frame decoder under generated input: any frame stream, cut anywhere, decodes to what
was encoded; random and mutated bytes raise only `RemoteProtocolError` (a `DecodeError`), never
anything else, and never buffer more than the bound.

HYPOTHESIS_PROFILE=soak raises the example counts (tests/conftest.py)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from redshank.protocol.rpc import (
    HEADER,
    Frame,
    FrameDecoder,
    FrameKind,
    RemoteProtocolError,
    Status,
    encode_frame,
)

_frames = st.lists(
    st.tuples(
        st.sampled_from(list(FrameKind)),
        st.integers(0, 0xFFFF),
        st.integers(0, (1 << 64) - 1),
        st.binary(max_size=300),
        st.sampled_from(list(Status)),
    ),
    max_size=20,
)


def _encode(spec: tuple[FrameKind, int, int, bytes, Status]) -> bytes:
    kind, method, cid, payload, status = spec
    return encode_frame(kind, method, cid, payload,
                        status if kind is FrameKind.RESPONSE else Status.OK)


def _key(f: Frame) -> tuple[int, int, int, bytes, int]:
    return f.kind, f.method, f.correlation_id, bytes(f.payload), f.status


@given(_frames, st.lists(st.integers(0, 10_000), max_size=10))
def test_any_stream_cut_anywhere_round_trips(
    specs: list[tuple[FrameKind, int, int, bytes, Status]], cuts: list[int]
) -> None:
    stream = b"".join(_encode(s) for s in specs)
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    dec = FrameDecoder(max_frame_bytes=300)
    got = []
    for a, b in itertools.pairwise(bounds):
        dec.feed(stream[a:b])
        got += [_key(f) for f in dec]
    dec.close()
    assert list(dec) == []
    assert got == [(k, m, c, p, s if k is FrameKind.RESPONSE else Status.OK)
                   for k, m, c, p, s in specs]


def _decode_bad(data: bytes, chunk: int) -> None:
    dec = FrameDecoder(max_frame_bytes=1000, max_buffered_bytes=4096)
    try:
        for i in range(0, len(data), chunk):
            dec.feed(data[i : i + chunk])
            assert dec.buffered_bytes <= 4096
            for frame in dec:
                assert len(frame.payload) <= 1000
        dec.close()
        list(dec)
    except RemoteProtocolError:
        pass


@given(st.binary(max_size=2000), st.integers(1, 64))
def test_random_bytes_raise_only_remote_protocol_errors(data: bytes, chunk: int) -> None:
    _decode_bad(data, chunk)


@given(_frames, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1,
                         max_size=5), st.integers(1, 64))
def test_mutated_streams_raise_only_remote_protocol_errors(
    specs: list[tuple[FrameKind, int, int, bytes, Status]], flips: list[tuple[int, int]],
    chunk: int,
) -> None:
    stream = bytearray(b"".join(_encode(s) for s in specs) or b"\0" * HEADER)
    for pos, value in flips:
        stream[pos % len(stream)] = value
    _decode_bad(bytes(stream), chunk)
