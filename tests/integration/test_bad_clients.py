"""Bad input closes only the offending connection: garbage, an oversized frame prefix, a frame
cut off by the peer; the broker keeps serving everyone else."""

from __future__ import annotations

import socket
import struct

import pytest
from broker_proc import BrokerProcess, recv_exact
from confluent_kafka import Producer

from redshank.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from redshank.protocol.messages.request_header import RequestHeader


def _connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def _api_versions_roundtrip(bootstrap: str) -> ApiVersionsResponse:
    body = RequestHeader(18, 0, 7, "probe").encode(1) + ApiVersionsRequest().encode(0)
    with _connect(bootstrap) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        frame = recv_exact(sock, size)
    assert struct.unpack(">i", frame[:4])[0] == 7
    return ApiVersionsResponse.decode(frame[4:], 0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("payload", [
    b"\x00\x00\x00\x10" + b"\xff" * 16,          # a frame whose header names no API
    struct.pack(">i", 2**31 - 1),               # a size prefix far above the frame limit
    struct.pack(">i", -5),                      # a negative size
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",       # not Kafka at all
])
def test_garbage_closes_only_that_connection(broker: BrokerProcess, payload: bytes) -> None:
    with _connect(broker.bootstrap) as bad:
        bad.sendall(payload)
        assert _closed_by_peer(bad)
    resp = _api_versions_roundtrip(broker.bootstrap)
    assert resp.error_code == 0 and resp.api_keys


@pytest.mark.timeout(60)
def test_peer_closing_mid_frame_leaves_others_served(broker: BrokerProcess) -> None:
    with _connect(broker.bootstrap) as half:
        half.sendall(struct.pack(">i", 100) + b"\x00\x12\x00\x00")  # 8 of 100 bytes, then EOF
        half.shutdown(socket.SHUT_WR)
        assert _closed_by_peer(half)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce("after-bad-clients", value=b"ok")
    assert producer.flush(20) == 0


@pytest.mark.timeout(60)
def test_half_closed_peer_gets_its_answers_then_eof(broker: BrokerProcess) -> None:
    body = RequestHeader(18, 0, 11, "half").encode(1) + ApiVersionsRequest().encode(0)
    with _connect(broker.bootstrap) as sock:
        sock.sendall((struct.pack(">i", len(body)) + body) * 2)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    frames = []
    while data:
        size = struct.unpack(">i", data[:4])[0]
        frames.append(data[4:4 + size])
        data = data[4 + size:]
    assert len(frames) == 2
    assert all(ApiVersionsResponse.decode(f[4:], 0).error_code == 0 for f in frames)
