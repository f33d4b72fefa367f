"""The internal RPC transport over real sockets on 127.0.0.1: calls, one-way, errors answered,
deadlines, a peer that dies and comes back, bad bytes, backpressure from a peer that stops
reading, and close/stop leaving no task behind. Each test runs its own loop, bounded in time."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import structlog

from redshank.actors.rpc import (
    Backoff,
    RpcClient,
    RpcClosed,
    RpcConnectionError,
    RpcRemoteError,
    RpcServer,
    RpcTimeout,
    rpc_port,
)
from redshank.actors.rpc._write import FLUSH_AT
from redshank.protocol.rpc import (
    HEADER,
    FrameKind,
    LocalProtocolError,
    Status,
    encode_frame,
    encode_header,
)

ECHO, FAIL, NEVER, SYNC, NOTE, BIG = 1, 2, 3, 4, 5, 6
LOOPS = ["asyncio", "uvloop"]


def _run(main: Callable[[], Coroutine[Any, Any, None]], loop: str, limit: float = 8.0) -> None:
    """Run `main` bounded in time; fail if it leaves a task behind."""

    async def bounded() -> None:
        async with asyncio.timeout(limit):
            await main()
        await asyncio.sleep(0)  # let done-callbacks of what main ended run
        leaked = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
        assert leaked == set(), leaked

    if loop == "uvloop":
        import uvloop

        uvloop.run(bounded())
    else:
        asyncio.run(bounded())


async def _until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait for a condition the loop's callbacks make true (checked every millisecond)."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.001)


class _Server:
    """An RpcServer with the test handlers; `release` lets the NEVER handler answer."""

    def __init__(self, port: int = 0, **kw: Any) -> None:
        self.server = RpcServer("127.0.0.1", port, **kw)
        self.release = asyncio.Event()
        self.entered = 0
        self.notes: list[bytes] = []
        self.noted = asyncio.Event()
        s = self.server

        async def echo(p: memoryview) -> bytes:
            for _ in range(p[0] % 5 if p else 0):  # answers out of order
                await asyncio.sleep(0)
            return b"re:" + p

        async def fail(p: memoryview) -> bytes:
            raise ValueError(f"bad input {bytes(p)!r}")

        async def never(p: memoryview) -> bytes:
            self.entered += 1
            await self.release.wait()
            return b"late"

        def note(p: memoryview) -> None:
            self.notes.append(bytes(p))
            self.noted.set()

        s.register(ECHO, echo)
        s.register(FAIL, fail)
        s.register(NEVER, never)
        s.register(SYNC, lambda p: bytes(p)[::-1])
        s.register(NOTE, note)
        s.register(BIG, lambda p: b"x" * (int(bytes(p)) if p else 0))

    async def __aenter__(self) -> RpcServer:
        await self.server.start()
        return self.server

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()


def _client(server: RpcServer, **kw: Any) -> RpcClient:
    kw.setdefault("backoff", Backoff(base_s=0.02, cap_s=0.1, rng=random.Random(7)))
    return RpcClient(*server.address, **kw)


class _Silent(asyncio.Protocol):
    """A raw peer: accepts, never answers; `read=False` stops reading at once."""

    transports: list[asyncio.Transport]

    def __init__(self, read: bool = True) -> None:
        self.read = read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: Any = transport
        _Silent.transports.append(t)
        if not self.read:
            # Not at once: uvloop starts reading after connection_made, undoing a pause there.
            asyncio.get_running_loop().call_soon(t.pause_reading)


async def _deaf_peer() -> asyncio.Server:
    """A raw server that accepts and never reads, with a small receive buffer (so the kernel's
    buffers fill after a few hundred KiB)."""
    _Silent.transports = []
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    listener.bind(("127.0.0.1", 0))
    return await asyncio.get_running_loop().create_server(
        lambda: _Silent(read=False), sock=listener)


async def _close_deaf_peer(raw: asyncio.Server) -> None:
    raw.close()
    for t in _Silent.transports:
        t.abort()
    await raw.wait_closed()


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_call_response_sync_and_async_handlers(loop: str) -> None:
    async def main() -> None:
        async with _Server() as server, _client(server) as client:
            assert bytes(await client.call(ECHO, b"\x00hello")) == b"re:\x00hello"
            assert bytes(await client.call(SYNC, b"abc", timeout=1)) == b"cba"
            assert bytes(await client.call(ECHO, memoryview(b"\x00view"))) == b"re:\x00view"
            assert bytes(await client.call(NOTE, b"none is empty")) == b""
            assert client.connects == 1 and client.inflight_bytes == 0

    _run(main, loop)


def test_many_concurrent_calls_matched_by_correlation_id(loop: str) -> None:
    async def main() -> None:
        async with _Server() as server, _client(server) as client:
            payloads = [bytes([i % 256]) + str(i).encode() for i in range(1000)]
            results = await asyncio.gather(*(client.call(ECHO, p) for p in payloads))
            assert [bytes(r) for r in results] == [b"re:" + p for p in payloads]
            assert client.connects == 1 and client.pending_calls == 0

    _run(main, loop)


def test_one_way_has_no_response(loop: str) -> None:
    async def main() -> None:
        srv = _Server()
        async with srv as server, _client(server) as client:
            await client.send(NOTE, b"fire")
            async with asyncio.timeout(2):
                await srv.noted.wait()
            assert srv.notes == [b"fire"]
            # A one-way to an unknown method gets no answer either; the connection stays.
            await client.send(999, b"lost")
            assert bytes(await client.call(SYNC, b"ok")) == b"ko"
            assert client.late_responses == 0 and client.connects == 1

    _run(main, loop)


def test_unknown_method_is_answered_and_the_connection_stays(loop: str) -> None:
    async def main() -> None:
        async with _Server() as server, _client(server) as client:
            with pytest.raises(RpcRemoteError, match="unknown method 4242") as err:
                await client.call(4242, b"?")
            assert err.value.status is Status.UNKNOWN_METHOD
            assert bytes(await client.call(SYNC, b"12")) == b"21"
            assert client.connects == 1

    _run(main, loop)


def test_handler_error_is_answered_and_logged(loop: str) -> None:
    async def main() -> None:
        with structlog.testing.capture_logs() as logs:
            async with _Server(core=3) as server, _client(server) as client:
                with pytest.raises(RpcRemoteError, match="ValueError: bad input") as err:
                    await client.call(FAIL, b"x")
                assert err.value.status is Status.HANDLER_ERROR
                with pytest.raises(RpcRemoteError):
                    await client.call(FAIL, b"y")
                assert bytes(await client.call(SYNC, b"ab")) == b"ba"
                assert client.connects == 1
                port = server.address[1]
        failed = [e for e in logs if e["event"].startswith("rpc_handler_failed")]
        # One line, then counted (a handler failing on every request costs no line each).
        assert len(failed) == 1
        assert failed[0]["reason"] == "ValueError" and failed[0]["core"] == 3
        assert failed[0]["rpc_port"] == port  # the bound port, not the 0 asked for

    _run(main, loop)


def test_a_handler_returning_no_bytes_is_a_handler_error(loop: str) -> None:
    async def main() -> None:
        srv = _Server()
        srv.server.register(77, lambda p: "text")  # type: ignore[arg-type, return-value]
        async with srv as server, _client(server) as client:
            with pytest.raises(RpcRemoteError, match="handler returned str") as err:
                await client.call(77, b"")
            assert err.value.status is Status.HANDLER_ERROR

    _run(main, loop)


def test_response_naming_another_method_breaks_the_connection(loop: str) -> None:
    async def main() -> None:
        class Liar(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.t: Any = transport

            def data_received(self, data: bytes) -> None:
                cid = struct.unpack_from(">Q", data, 8)[0]
                self.t.write(encode_frame(FrameKind.RESPONSE, 999, cid, b"?"))

        raw = await asyncio.get_running_loop().create_server(Liar, "127.0.0.1", 0)
        client = RpcClient("127.0.0.1", raw.sockets[0].getsockname()[1])
        with pytest.raises(RpcConnectionError, match="names method 999"):
            await client.call(ECHO, b"x", timeout=2)
        await client.close()
        raw.close()
        await raw.wait_closed()

    _run(main, loop)


def test_response_too_large_is_an_error_status(loop: str) -> None:
    async def main() -> None:
        async with _Server(max_frame_bytes=1000) as server, _client(server) as client:
            assert len(await client.call(BIG, b"1000")) == 1000
            with pytest.raises(RpcRemoteError) as err:
                await client.call(BIG, b"1001")
            assert err.value.status is Status.TOO_LARGE
            with pytest.raises(LocalProtocolError, match="above max_frame_bytes"):
                await _client(server, max_frame_bytes=10).call(ECHO, b"x" * 11)

    _run(main, loop)


def test_large_memoryview_payload(loop: str) -> None:
    async def main() -> None:
        async with _Server() as server, _client(server) as client:
            batch = bytearray(random.Random(3).randbytes(4 << 20))
            batch[0] = 0
            got = await client.call(ECHO, memoryview(batch)[: 3 << 20])
            assert bytes(got) == b"re:" + bytes(batch[: 3 << 20])

    _run(main, loop)


def test_deadline_against_a_handler_that_never_answers(loop: str) -> None:
    async def main() -> None:
        srv = _Server()
        async with srv as server, _client(server) as client:
            start = time.monotonic()
            with pytest.raises(RpcTimeout, match=r"no response within 0\.1 s") as err:
                await client.call(NEVER, b"", timeout=0.1)
            assert time.monotonic() - start < 1.0
            assert err.value.method == NEVER and isinstance(err.value, TimeoutError)
            assert client.pending_calls == 0 and client.inflight_bytes == 0
            srv.release.set()  # the late answer comes, and is dropped
            await _until(lambda: client.late_responses == 1)
            assert bytes(await client.call(SYNC, b"up")) == b"pu"
            with pytest.raises(ValueError, match="finite positive deadline"):
                await client.call(ECHO, b"", timeout=float("inf"))

    _run(main, loop)


def test_peer_killed_mid_call_fails_fast_then_reconnects_with_bounded_backoff(loop: str) -> None:
    async def main() -> None:
        _Silent.transports = []
        lp = asyncio.get_running_loop()
        raw = await lp.create_server(lambda: _Silent(), "127.0.0.1", 0)
        port = raw.sockets[0].getsockname()[1]
        # No jitter and a 0.2 s step: "in backoff" holds however slow this machine is.
        client = RpcClient("127.0.0.1", port, backoff=Backoff(base_s=0.2, cap_s=0.2, jitter=0))
        calls = [asyncio.ensure_future(client.call(ECHO, b"x", timeout=5)) for _ in range(3)]
        await _until(lambda: client.pending_calls == 3)
        start = time.monotonic()
        raw.close()
        for t in _Silent.transports:
            t.abort()  # the peer dies: RST, no answer
        await raw.wait_closed()
        for call in calls:
            with pytest.raises(RpcConnectionError, match="lost"):
                await call
        assert time.monotonic() - start < 1.0  # at once, not at the 5 s deadline
        # Down: the next call is refused at once, and the one after fails fast in backoff.
        with pytest.raises(RpcConnectionError, match="cannot connect"):
            await client.call(ECHO, b"x", timeout=5)
        with pytest.raises(RpcConnectionError, match="next attempt in"):
            await client.call(ECHO, b"x", timeout=5)
        with pytest.raises(RpcTimeout, match="not connected within"):
            await client.connect(timeout=0.3)  # waits the backoff out, tries again, fails
        assert client.backoff.failures >= 2
        srv = _Server(port=port)
        async with srv as server:
            start = time.monotonic()
            await client.connect(timeout=2)
            assert time.monotonic() - start < client.backoff.cap_s + 0.5
            assert bytes(await client.call(SYNC, b"back")) == b"kcab"
            assert client.connects == 2 and client.backoff.failures == 0
            await client.close()
        assert server.connections == 0

    _run(main, loop)


def test_a_connection_runs_at_most_its_bound_of_handlers(loop: str) -> None:
    async def main() -> None:
        srv = _Server(max_handlers_per_connection=3)
        async with srv as server, _client(server) as client:
            calls = [asyncio.ensure_future(client.call(NEVER, b"", timeout=5)) for _ in range(10)]
            await _until(lambda: srv.entered == 3 and client.pending_calls == 10)
            for _ in range(50):  # the other seven are here, and wait
                await asyncio.sleep(0)
            assert srv.entered == 3
            srv.release.set()
            assert [bytes(r) for r in await asyncio.gather(*calls)] == [b"late"] * 10
            assert srv.entered == 10

    _run(main, loop)


def test_server_stop_answers_shutting_down_and_closes(loop: str) -> None:
    async def main() -> None:
        srv = _Server()
        async with srv as server:
            client = _client(server)
            calls = [asyncio.ensure_future(client.call(NEVER, b"", timeout=5)) for _ in range(4)]
            await _until(lambda: srv.entered == 4)
            await server.stop()
            for call in calls:
                with pytest.raises(RpcRemoteError, match="SHUTTING_DOWN"):
                    await call
            await _until(lambda: not client.connected)
            with pytest.raises(RpcConnectionError):
                await client.call(ECHO, b"x")
            await client.close()

    _run(main, loop)


async def _raw_exchange(port: int, data: bytes) -> bytes:
    """Write `data` on a fresh socket, then read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    writer.write_eof()
    try:
        async with asyncio.timeout(3):
            return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


@pytest.mark.parametrize(
    "bad",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 10,  # bad magic
        encode_header(FrameKind.REQUEST, ECHO, 1, b"x" * 2000),  # length above the bound
        struct.pack(">HBBHHQI", 0x5253, 1, 1, ECHO, 0, 1, 0xFFFFFFFF) + b"\0" * 4,
        encode_frame(FrameKind.REQUEST, SYNC, 1, b"ok")[:-1] + b"!",  # bad CRC
        encode_frame(FrameKind.RESPONSE, SYNC, 1, b"ok"),  # a response sent to a server
        encode_frame(FrameKind.REQUEST, SYNC, 1, b"ok")[: HEADER + 1],  # then EOF: truncated
    ],
)
def test_bad_bytes_close_that_connection_only(bad: bytes) -> None:
    async def main() -> None:
        with structlog.testing.capture_logs() as logs:
            async with _Server(max_frame_bytes=1000) as server, _client(server) as client:
                assert bytes(await client.call(SYNC, b"ab")) == b"ba"
                answer = await _raw_exchange(server.address[1], bad)
                assert answer == b""  # closed, nothing answered
                await _until(lambda: server.connections == 1)
                assert bytes(await client.call(SYNC, b"cd")) == b"dc"
                assert client.connects == 1
        assert [e["event"] for e in logs] == ["rpc_connection_closed"]

    _run(main, "asyncio")


def test_a_good_raw_frame_is_answered() -> None:
    async def main() -> None:
        async with _Server() as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(encode_frame(FrameKind.REQUEST, SYNC, 77, b"raw"))
            answer = await reader.readexactly(HEADER + 3)
            assert answer == encode_frame(FrameKind.RESPONSE, SYNC, 77, b"war")
            writer.close()
            await writer.wait_closed()

    _run(main, "asyncio")


def test_client_gets_bad_bytes_from_its_peer(loop: str) -> None:
    async def main() -> None:
        class Garbage(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.t: Any = transport

            def data_received(self, data: bytes) -> None:
                self.t.write(b"\xff" * HEADER)

        lp = asyncio.get_running_loop()
        raw = await lp.create_server(Garbage, "127.0.0.1", 0)
        client = RpcClient("127.0.0.1", raw.sockets[0].getsockname()[1])
        with pytest.raises(RpcConnectionError, match="bad bytes"):
            await client.call(ECHO, b"x", timeout=2)
        await _until(lambda: not client.connected)
        await client.close()
        raw.close()
        await raw.wait_closed()

    _run(main, loop)


def test_backpressure_from_a_peer_that_stops_reading(loop: str) -> None:
    """Calls past `max_inflight_bytes` wait instead of being buffered, then time out; across
    many rounds (the kernel's buffers fill) the bytes held stay under the bound plus one frame."""

    async def main() -> None:
        raw = await _deaf_peer()
        bound, size = 256 * 1024, 64 * 1024
        client = RpcClient("127.0.0.1", raw.sockets[0].getsockname()[1],
                           max_inflight_bytes=bound, send_buffer_bytes=32 * 1024)
        await client.connect()  # so the first round's deadlines are not spent connecting
        payload = memoryview(bytes(size))
        peak_buffered = peak_inflight = 0
        saw_transport_full = False
        for _round in range(10):
            calls = [asyncio.ensure_future(client.call(ECHO, payload, timeout=0.15))
                     for _ in range(12)]
            await _until(lambda: client.waiting + client.pending_calls == 12)
            peak_inflight = max(peak_inflight, client.inflight_bytes)
            peak_buffered = max(peak_buffered, client.buffered_bytes)
            assert client.pending_calls <= bound // size  # the rest were never written
            assert client.waiting >= 12 - bound // size
            for call in calls:
                with pytest.raises(RpcTimeout):
                    await call
            saw_transport_full |= client.pending_calls == 0 and client.buffered_bytes > size
            if saw_transport_full and _round >= 2:
                break
        assert saw_transport_full, "the kernel never filled: the bound was not exercised"
        assert peak_inflight <= bound
        assert peak_buffered <= bound + size + HEADER
        assert client.inflight_bytes == 0 and client.waiting == 0
        await client.close()
        await _close_deaf_peer(raw)

    _run(main, loop, limit=9.0)


def test_send_now_only_on_an_open_unblocked_connection_and_in_order(loop: str) -> None:
    async def main() -> None:
        srv = _Server()
        async with srv as server, _client(server) as client:
            # No connection yet: nothing sent (the caller falls back to `send`).
            assert not client.send_now(NOTE, b"early")
            await client.send(NOTE, b"1")
            # Connected: in the transport before returning, after what `send` wrote, even
            # with the loop never yielding in between.
            assert client.send_now(NOTE, b"2") and client.send_now(NOTE, b"3")
            assert client.buffered_bytes == 0  # not corked to the end of the turn
            await _until(lambda: len(srv.notes) == 3)
            assert srv.notes == [b"1", b"2", b"3"]
            with pytest.raises(LocalProtocolError, match="max_frame_bytes"):
                client.send_now(NOTE, bytes(client.max_frame_bytes + 1))
        with pytest.raises(RpcClosed):
            client.send_now(NOTE, b"closed")

    _run(main, loop)


def test_send_now_refuses_while_the_peer_does_not_read(loop: str) -> None:
    async def main() -> None:
        raw = await _deaf_peer()
        client = RpcClient("127.0.0.1", raw.sockets[0].getsockname()[1],
                           max_inflight_bytes=64 * 1024, send_buffer_bytes=32 * 1024)
        await client.connect()
        payload, sent = bytes(1000), 0
        while client.send_now(NOTE, payload):  # never yields: stops once the transport is full
            sent += 1
            assert sent < 100_000
        assert sent > 0 and client.buffered_bytes > 64 * 1024
        # Refused, not queued: the same frame with `send` waits for the peer (here, in vain).
        with pytest.raises(RpcTimeout, match="not sent within"):
            await client.send(NOTE, payload, timeout=0.2)
        await client.close()
        await _close_deaf_peer(raw)

    _run(main, loop)


def test_one_way_sends_wait_while_the_peer_does_not_read(loop: str) -> None:
    async def main() -> None:
        raw = await _deaf_peer()
        bound = 64 * 1024
        client = RpcClient("127.0.0.1", raw.sockets[0].getsockname()[1],
                           max_inflight_bytes=bound, send_buffer_bytes=32 * 1024)
        await client.connect()
        payload, sent, peak = bytes(1000), 0, 0
        with pytest.raises(RpcTimeout, match="not sent within"):
            while sent < 100_000:  # never yields to the loop unless the transport is full
                await client.send(NOTE, payload, timeout=0.2)
                sent += 1
                peak = max(peak, client.buffered_bytes)
        assert 0 < sent < 100_000
        assert bound < peak <= bound + FLUSH_AT + HEADER + len(payload)
        await client.close()
        await _close_deaf_peer(raw)

    _run(main, loop)


def test_close_fails_pending_and_waiting_calls_and_leaves_no_task(loop: str) -> None:
    async def main() -> None:
        srv = _Server()
        async with srv as server:
            client = _client(server, max_inflight_bytes=10)
            pending = [asyncio.ensure_future(client.call(NEVER, b"12345678", timeout=5))
                       for _ in range(3)]
            await _until(lambda: client.pending_calls == 1 and client.waiting == 2)
            await client.close()
            for call in pending:
                with pytest.raises(RpcClosed):
                    await call
            with pytest.raises(RpcClosed, match="closed"):
                await client.call(ECHO, b"x")
            await client.close()  # idempotent
            await _until(lambda: server.connections == 0)

    _run(main, loop)


def test_connection_refused_fails_at_once(loop: str) -> None:
    async def main() -> None:
        lp = asyncio.get_running_loop()
        probe = await lp.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        async with RpcClient("127.0.0.1", port) as client:
            with pytest.raises(RpcConnectionError, match="cannot connect"):
                await client.call(ECHO, b"x", timeout=5)
            with pytest.raises(RpcTimeout, match="not connected within"):
                await client.connect(timeout=0.1)

    _run(main, loop)


def test_rpc_port_is_base_plus_core() -> None:
    assert rpc_port(33145, 0) == 33145 and rpc_port(33145, 3) == 33148
    server = RpcServer.for_core("127.0.0.1", 40000, 5)
    assert server.port == 40005
    with pytest.raises(ValueError, match="no rpc port"):
        rpc_port(65535, 1)


def test_register_rejects_duplicates_and_bad_ids() -> None:
    server = RpcServer()

    async def h(p: memoryview) -> bytes:
        return b""

    server.register(1, h)
    with pytest.raises(ValueError, match="already has a handler"):
        server.register(1, h)
    with pytest.raises(ValueError, match="uint16"):
        server.register(1 << 16, h)

