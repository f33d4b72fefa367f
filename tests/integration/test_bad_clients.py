"""Bad input closes only the offending connection: garbage, an oversized frame prefix, a frame
cut off by the peer; the broker keeps serving everyone else. A flood of connections sending
large frames they never finish stays within each core's request memory while small requests
keep being served, and the memory comes back when they go."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, recv_exact
from confluent_kafka import Consumer, Producer, TopicPartition

from redshank.actors.kafka_session import FRAME_DEADLINE_S
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


def _broker_rss_bytes(proc: BrokerProcess) -> int:
    """Resident memory of the node: the supervisor and its core processes."""
    assert proc.proc is not None
    root = proc.proc.pid
    pids = [root]
    for task in os.listdir(f"/proc/{root}/task"):
        with open(f"/proc/{root}/task/{task}/children") as f:
            pids += [int(p) for p in f.read().split()]
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


FLOOD_CONNECTIONS = 24
FLOOD_FRAME = 8 * 1024 * 1024  # announced; each flooder sends all but the last 64 KiB
REQUEST_MEMORY = 4 * 1024 * 1024  # per core, given to the broker below


@pytest.mark.timeout(180)
def test_flood_of_large_unfinished_frames_stays_within_request_memory(tmp_path: Path) -> None:
    node = BrokerProcess(tmp_path / "data", cores=2,
                         extra_args=("--queued-max-request-bytes", str(REQUEST_MEMORY)))
    node.start()
    flooders: list[socket.socket] = []
    try:
        producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all"})
        producer.produce("flood", value=b"before", partition=0)
        assert producer.flush(20) == 0
        before = _broker_rss_bytes(node)
        for _ in range(FLOOD_CONNECTIONS):
            sock = _connect(node.bootstrap)
            sock.setblocking(False)
            flooders.append(sock)
            sock.send(struct.pack(">i", FLOOD_FRAME))
        sent = _flood(flooders)
        grown = _broker_rss_bytes(node) - before
        # What the broker may hold: each core's request memory plus one read per connection
        # past it, and the buffers' own slack; far below what was sent its way.
        assert sent >= 100 * 1024 * 1024, f"flood too small to tell: {sent} bytes"
        assert grown < 2 * (2 * REQUEST_MEMORY + FLOOD_CONNECTIONS * (256 << 10)) + (16 << 20), (
            f"broker grew {grown} bytes with {sent} flooded")
        # Small requests keep flowing meanwhile.
        assert _api_versions_roundtrip(node.bootstrap).error_code == 0
        for i in range(4):
            producer.produce("flood", value=b"during", partition=0)
            assert producer.flush(20) == 0, f"produce {i} during the flood"
        # A frame that cannot finish meets the frame deadline: the broker closes every flooder
        # (a paused connection is not read, so closing our side would not tell it) ...
        for sock in flooders:
            sock.setblocking(True)
            sock.settimeout(FRAME_DEADLINE_S + 15)
            assert _closed_by_peer(sock)
        # ... and their memory is given back: a request above SMALL_REQUEST goes through.
        errors: list[object] = []
        producer.produce("flood", value=b"L" * (512 << 10), partition=0,
                         on_delivery=lambda err, _msg: errors.append(err))
        assert producer.flush(20) == 0 and errors == [None]
    finally:
        for sock in flooders:
            sock.close()
    try:
        consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "flood",
                             "auto.offset.reset": "earliest"})
        consumer.assign([TopicPartition("flood", 0, 0)])
        values = []
        deadline = time.monotonic() + 20
        while len(values) < 6 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
        consumer.close()
        assert values == [b"before"] + [b"during"] * 4 + [b"L" * (512 << 10)]
    finally:
        node.stop()


def _flood(flooders: list[socket.socket]) -> int:
    """Send each flooder's frame but its last 64 KiB, until all is sent or nothing has moved
    for a second (the broker stopped reading and the kernel buffers are full); bounded."""
    chunk = b"\x00" * (1 << 20)
    left = {id(s): FLOOD_FRAME - (64 << 10) for s in flooders}
    sent = 0
    deadline = last_move = time.monotonic()
    deadline += 20
    while any(left.values()) and time.monotonic() < deadline \
            and time.monotonic() - last_move < 1.0:
        moved = 0
        for sock in flooders:
            want = min(len(chunk), left[id(sock)])
            if want:
                try:
                    n = sock.send(chunk[:want])
                except BlockingIOError:
                    continue
                left[id(sock)] -= n
                moved += n
        sent += moved
        if moved:
            last_move = time.monotonic()
        else:
            time.sleep(0.05)
    return sent
