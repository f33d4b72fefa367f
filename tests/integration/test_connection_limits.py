"""Limits a client cannot talk the broker out of: a cap on the topics one Metadata request
auto-creates, idle connections closed (connections.max.idle.ms), and a flood of rejected
connections logged as a summary rather than one line each."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, recv_exact

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.api_versions import ApiVersionsRequest
from redshank.protocol.messages.metadata import (
    MetadataRequest,
    MetadataRequestTopic,
    MetadataResponse,
)
from redshank.protocol.messages.request_header import RequestHeader

CAP = 3
IDLE_MS = 500


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("limits") / "data", cores=2, extra_args=(
        "--auto-create-topics-per-request", str(CAP),
        "--connections-max-idle-ms", str(IDLE_MS)))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


def _roundtrip(sock: socket.socket, key: int, version: int, corr: int, body: bytes) -> bytes:
    frame = RequestHeader(key, version, corr, "limits").encode(2 if version >= 9 else 1) + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    data = recv_exact(sock, struct.unpack(">i", recv_exact(sock, 4))[0])
    assert struct.unpack(">i", data[:4])[0] == corr
    return data[4 + (1 if version >= 9 else 0):]


def _metadata(bootstrap: str, names: list[str]) -> MetadataResponse:
    req = MetadataRequest(topics=tuple(MetadataRequestTopic(name=n) for n in names),
                          allow_auto_topic_creation=True)
    with _connect(bootstrap) as sock:
        return MetadataResponse.decode(_roundtrip(sock, 3, 9, 1, req.encode(9)), 9)


def _api_versions(sock: socket.socket, corr: int) -> None:
    _roundtrip(sock, 18, 0, corr, ApiVersionsRequest().encode(0))


@pytest.mark.timeout(60)
def test_one_metadata_request_auto_creates_at_most_the_cap(node: BrokerProcess) -> None:
    names = [f"auto-{i}" for i in range(CAP + 2)]
    first = {t.name: t.error_code for t in _metadata(node.bootstrap, names).topics}
    # The first CAP new names (request order) are created; the rest are not, this time.
    assert [first[n] for n in names] == [ErrorCode.NONE] * CAP + [
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION] * 2
    # Asking again creates the rest (clients do ask again for topics they produce to).
    second = {t.name: t.error_code for t in _metadata(node.bootstrap, names).topics}
    assert all(second[n] == ErrorCode.NONE for n in names)


@pytest.mark.timeout(60)
def test_idle_connection_is_closed_and_an_active_one_is_not(node: BrokerProcess) -> None:
    with _connect(node.bootstrap) as idle, _connect(node.bootstrap) as active:
        _api_versions(idle, 1)
        last_idle_traffic = time.monotonic()
        idle.settimeout(0.05)
        deadline = last_idle_traffic + 10 * IDLE_MS / 1000
        corr = 1
        closed_at = None
        while closed_at is None:
            assert time.monotonic() < deadline, "the idle connection was never closed"
            corr += 1
            _api_versions(active, corr)  # a request every ~50 ms: never idle
            try:
                if idle.recv(1) == b"":
                    closed_at = time.monotonic()
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed_at = time.monotonic()
        assert closed_at - last_idle_traffic >= IDLE_MS / 1000 * 0.9  # not before its time
        # The active connection outlived several idle periods and still answers.
        end = time.monotonic() + 2 * IDLE_MS / 1000
        while time.monotonic() < end:
            corr += 1
            _api_versions(active, corr)
            time.sleep(0.05)


def _log_events(node: BrokerProcess) -> list[dict[str, object]]:
    out = []
    for line in node.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.mark.timeout(60)
def test_a_flood_of_rejected_connections_is_logged_as_a_summary(node: BrokerProcess) -> None:
    flood = 40
    before = len(_log_events(node))
    for _ in range(flood):
        with _connect(node.bootstrap) as bad:
            bad.sendall(struct.pack(">i", -5))  # a negative frame size: rejected at once
            try:
                assert bad.recv(1) == b""
            except ConnectionResetError:
                pass
    # One line per core at most for the flood itself; the rest arrive counted in summary
    # lines (one per core and interval), which may take an interval (10 s) to show.
    deadline = time.monotonic() + 30
    while True:
        events = _log_events(node)[before:]
        lines = [e for e in events if e.get("event") == "connection_closed"
                 and e.get("reason") == "bad_frame"]
        summarised = 0
        for e in events:
            if e.get("event") == "connection_closed_summary":
                by_reason = e.get("by_reason")
                assert isinstance(by_reason, dict)
                summarised += int(by_reason.get("bad_frame", 0))
        assert len(lines) <= node.cores
        if len(lines) + summarised == flood:
            break
        assert len(lines) + summarised < flood
        assert time.monotonic() < deadline, f"{len(lines)} lines + {summarised} summarised"
        time.sleep(0.2)


@pytest.mark.timeout(60)
def test_start_rejects_bad_limits(tmp_path: Path) -> None:
    for flag, value, message in (
            ("--connections-max-idle-ms", "-1", "must be >= 0"),
            ("--auto-create-topics-per-request", "0", "must be >= 1")):
        cmd = BrokerProcess(tmp_path / "data", extra_args=(flag, value)).command()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and f"{flag} {message}" in done.stderr, done
