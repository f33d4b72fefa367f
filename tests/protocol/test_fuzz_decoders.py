"""Bad input never escapes as anything but the DecodeError family, and never costs memory beyond
the input's size: every generated decoder (all APIs, all versions, both headers) and the
connection, over truncations, mutations of valid encodings, random bytes, huge declared lengths,
bad varints and nested length blowups.

HYPOTHESIS_PROFILE=soak raises the example counts (tests/conftest.py)."""

from __future__ import annotations

import random
import struct
import tracemalloc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redshank.protocol.api_versions import ADVERTISED, request_header_version
from redshank.protocol.connection import (
    NEED_DATA,
    ConnectionClosed,
    KafkaServerConnection,
    RequestReceived,
)
from redshank.protocol.errors import DecodeError
from redshank.protocol.messages import (
    REQUESTS,
    RESPONSES,
    metadata,
    produce,
    request_header,
    response_header,
)
from redshank.tools.codegen.generate import default_spec_dir
from redshank.tools.codegen.samples import sample
from redshank.tools.codegen.spec import load_api_specs

_PAIRS, _HEADERS = load_api_specs(default_spec_dir())
_HEADER_CLASSES = {"RequestHeader": request_header.RequestHeader,
                   "ResponseHeader": response_header.ResponseHeader}


def _decoders() -> list[tuple[Any, Any, int]]:
    out = []
    for req, resp in _PAIRS:
        assert req.api_key is not None
        for msg, cls in ((req, REQUESTS[req.api_key]), (resp, RESPONSES[req.api_key])):
            out += [(msg, cls, v) for v in range(msg.valid.lo, msg.valid.hi + 1)]
    for h in _HEADERS:
        out += [(h, _HEADER_CLASSES[h.name], v) for v in range(h.valid.lo, h.valid.hi + 1)]
    return out


DECODERS = _decoders()


def _decode(cls: Any, data: bytes | bytearray | memoryview, version: int) -> None:
    try:
        cls.decode(data, version)
    except DecodeError:
        pass  # the only acceptable failure


def test_truncations_and_mutations_of_valid_encodings_every_decoder() -> None:
    rng = random.Random(1234)
    for msg, cls, v in DECODERS:
        data = sample(msg.body, cls, v, seed=v).encode(v)
        for cut in range(len(data)):
            with pytest.raises(DecodeError):
                cls.decode(data[:cut], v)
        with pytest.raises(DecodeError):
            cls.decode(data + b"\x00", v)  # trailing bytes
        for _ in range(12):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                pos = rng.randrange(len(mutated)) if mutated else 0
                choice = rng.random()
                if not mutated or choice < 0.2:
                    mutated.insert(pos, rng.randrange(256))
                elif choice < 0.4:
                    del mutated[pos]
                else:
                    mutated[pos] = rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            _decode(cls, bytes(mutated), v)


_HUGE_PREFIXES = [
    b"\x7f\xff\xff\xff",  # int32 max: arrays/bytes/records lengths
    b"\x7f\xff",  # int16 max: string lengths
    b"\xff\xff\xff\xff\x0f",  # uvarint 2**32 - 1: compact lengths
    b"\xfe\xff\xff\xff\x07",  # uvarint 2**31 - 2
    b"\x80\x80\x80\x80\x80\x80\x01",  # a varint longer than 5 bytes
    b"\xff\xff\xff\xfe",  # a negative length other than -1
]


def test_huge_declared_lengths_cost_no_memory_every_decoder() -> None:
    """Every decoder, fed every huge-length prefix at every offset of a short buffer, allocates
    no more than a small constant: lengths are checked against the bytes present first."""
    tracemalloc.start()
    try:
        worst = 0
        for _msg, cls, v in DECODERS:
            for prefix in _HUGE_PREFIXES:
                for pad in (0, 1, 2, 4, 6, 8):
                    data = b"\x01" * pad + prefix * 3 + b"\x01" * 8
                    tracemalloc.reset_peak()
                    base = tracemalloc.get_traced_memory()[0]
                    _decode(cls, data, v)
                    worst = max(worst, tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    assert worst < 64 * 1024, worst


def test_nested_length_blowup_is_bounded() -> None:
    # Metadata v12 response: brokers array, then topics, each declaring the maximum count.
    nested = b"\x00\x00\x00\x00" + b"\xff\xff\xff\xff\x0f" * 64
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            metadata.MetadataResponse.decode(nested, 12)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    # One topic holding one partition whose records claim 2 GiB: rejected, nothing allocated.
    head = produce.ProduceRequest(topic_data=(produce.TopicProduceData("t", (
        produce.PartitionProduceData(0, b"x"),)),)).encode(7)
    blown = head[: -5] + b"\x7f\xff\xff\xff" + b"x"
    with pytest.raises(DecodeError):
        produce.ProduceRequest.decode(blown, 7)


@given(st.sampled_from(DECODERS), st.binary(max_size=256))
def test_random_bytes_any_decoder(case: tuple[Any, Any, int], data: bytes) -> None:
    _msg, cls, v = case
    _decode(cls, data, v)


@given(st.sampled_from(DECODERS), st.integers(0, 2**32), st.data())
def test_mutated_encodings_any_decoder(case: tuple[Any, Any, int], seed: int,
                                        draw: st.DataObject) -> None:
    msg, cls, v = case
    data = bytearray(sample(msg.body, cls, v, seed % 1000, null_rate=0.3).encode(v))
    if data:
        pos = draw.draw(st.integers(0, len(data) - 1))
        data[pos:pos + 1] = draw.draw(st.binary(min_size=0, max_size=6))
    _decode(cls, bytes(data), v)


def _drive(conn: KafkaServerConnection, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            if not chunk:
                continue  # b"" would mean end of stream
            conn.receive_data(chunk)
            while True:
                ev = conn.next_event()
                if ev is NEED_DATA:
                    break
                assert not isinstance(ev, ConnectionClosed)
                if isinstance(ev, RequestReceived) and ev.expects_response:
                    conn.send_response(ev.token, RESPONSES[ev.api_key]())
        conn.receive_data(b"")
        conn.next_event()
    except DecodeError:
        pass


@given(st.lists(st.binary(max_size=64), max_size=12))
def test_connection_random_bytes(chunks: list[bytes]) -> None:
    _drive(KafkaServerConnection(max_frame_size=4096), chunks)


@given(st.integers(0, 2**16), st.data())
def test_connection_mutated_valid_frames(seed: int, draw: st.DataObject) -> None:
    rng = random.Random(seed)
    stream = bytearray()
    for corr in range(3):
        key = rng.choice([0, 1, 3, 18, 19])
        req_cls = REQUESTS[key]
        spec = next(r for r, _ in _PAIRS if r.api_key == key)
        lo, hi = ADVERTISED[key]
        v = rng.randint(lo, hi)
        body = sample(spec.body, req_cls, v, rng.randrange(100)).encode(v)
        header = request_header.RequestHeader(key, v, corr, "f").encode(
            request_header_version(key, v))
        stream += struct.pack(">i", len(header) + len(body)) + header + body
    pos = draw.draw(st.integers(0, len(stream) - 1))
    stream[pos:pos + 1] = draw.draw(st.binary(max_size=4))
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    chunks = [bytes(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    _drive(KafkaServerConnection(max_frame_size=1 << 16), chunks)
