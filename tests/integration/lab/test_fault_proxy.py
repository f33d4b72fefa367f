"""FaultProxy and ProxyMesh against plain sockets on loopback: bytes flow, cuts hold them (proved
by the proxy's counters, with a short explicit absence check on the receiving socket), heals
deliver them in order, resets reset, the hold cap bounds memory, and close leaks nothing."""

from __future__ import annotations

import os
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from lab.fault_proxy import A_TO_B, B_TO_A, FaultProxy, ProxyMesh, ProxyStats

TIMEOUT = 5.0
ABSENCE_WINDOW = 0.2  # how long "nothing arrives" is watched; only ever asserted as absence


def wait_for(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.005)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, f"closed after {len(buf)} of {n} bytes"
        buf += chunk
    return buf


def assert_nothing_arrives(sock: socket.socket) -> None:
    readable, _, _ = select.select([sock], [], [], ABSENCE_WINDOW)
    assert not readable, "bytes arrived across a cut"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT)
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass


@contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.block_on_close = True  # server_close joins the handlers (each bounded by TIMEOUT)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield str(host), int(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


class Ends:
    """A client connected through a proxy and the target's accepted socket: both ends of one
    proxied connection, so a test can send either way."""

    def __init__(self, proxy: FaultProxy, listener: socket.socket, *,
                 accept: bool = True) -> None:
        self.client = socket.create_connection(proxy.address, timeout=TIMEOUT)
        self.listener = listener
        self.server: socket.socket | None = None
        if accept:
            self.accept()

    def accept(self) -> socket.socket:
        self.listener.settimeout(TIMEOUT)
        self.server, _ = self.listener.accept()
        self.server.settimeout(TIMEOUT)
        return self.server

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def proxy(listener: socket.socket) -> Iterator[FaultProxy]:
    with FaultProxy(listener.getsockname()) as p:
        yield p


@pytest.fixture
def ends(proxy: FaultProxy, listener: socket.socket) -> Iterator[Ends]:
    e = Ends(proxy, listener)
    try:
        yield e
    finally:
        e.close()


def _srv(ends: Ends) -> socket.socket:
    assert ends.server is not None
    return ends.server


def test_bytes_flow_through_to_an_echo_server() -> None:
    with echo_server() as addr, FaultProxy(addr) as p, \
            socket.create_connection(p.address, timeout=TIMEOUT) as c:
        c.sendall(b"hello")
        assert recv_exact(c, 5) == b"hello"
        s = p.stats()
        assert (s.bytes_a_to_b, s.bytes_b_to_a, s.accepted, s.active) == (5, 5, 1, 1)


def test_cut_holds_both_directions_and_heal_delivers_in_order(proxy: FaultProxy,
                                                              ends: Ends) -> None:
    server = _srv(ends)
    proxy.cut()
    ends.client.sendall(b"to-server")
    server.sendall(b"to-client!")
    wait_for(lambda: (proxy.stats().held_a_to_b, proxy.stats().held_b_to_a) == (9, 10),
             "the proxy holds both directions' bytes")
    s = proxy.stats()
    assert (s.bytes_a_to_b, s.bytes_b_to_a) == (0, 0)
    assert_nothing_arrives(ends.client)
    assert_nothing_arrives(server)
    ends.client.sendall(b"+more")
    proxy.heal()
    assert recv_exact(server, 14) == b"to-server+more"
    assert recv_exact(ends.client, 10) == b"to-client!"
    wait_for(lambda: proxy.stats() == ProxyStats(14, 10, 0, 0, 1, 1, 0, 0, 0), "counters")


def test_one_way_cut_passes_the_other_direction(proxy: FaultProxy, ends: Ends) -> None:
    server = _srv(ends)
    proxy.cut_one_way(A_TO_B)
    ends.client.sendall(b"held")
    server.sendall(b"flows")
    assert recv_exact(ends.client, 5) == b"flows"
    wait_for(lambda: proxy.stats().held_a_to_b == 4, "a_to_b held")
    assert_nothing_arrives(server)
    proxy.heal(A_TO_B)
    assert recv_exact(server, 4) == b"held"

    proxy.cut_one_way(B_TO_A)
    server.sendall(b"held")
    ends.client.sendall(b"flows")
    assert recv_exact(server, 5) == b"flows"
    wait_for(lambda: proxy.stats().held_b_to_a == 4, "b_to_a held")
    assert_nothing_arrives(ends.client)
    proxy.heal()
    assert recv_exact(ends.client, 4) == b"held"


def test_new_connection_during_cut_is_accepted_but_reaches_nobody(
        proxy: FaultProxy, listener: socket.socket) -> None:
    proxy.cut()
    e = Ends(proxy, listener, accept=False)
    try:
        e.client.sendall(b"syn-held")
        wait_for(lambda: proxy.stats().held_a_to_b == 8, "the new connection's bytes held")
        assert proxy.stats().accepted == 1
        readable, _, _ = select.select([listener], [], [], ABSENCE_WINDOW)
        assert not readable, "the target saw a connection across a cut"
        proxy.heal()
        assert recv_exact(e.accept(), 8) == b"syn-held"
    finally:
        e.close()


def test_cut_with_reset_resets_both_sides(proxy: FaultProxy, ends: Ends) -> None:
    proxy.cut(reset=True)
    for sock in (ends.client, _srv(ends)):
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    assert proxy.stats().resets == 1
    wait_for(lambda: proxy.stats().active == 0, "the reset connection is gone")


def test_delay_delivers_no_earlier_than_asked(proxy: FaultProxy, ends: Ends) -> None:
    proxy.delay(150)
    sent = time.monotonic()
    ends.client.sendall(b"late")
    assert recv_exact(_srv(ends), 4) == b"late"
    assert time.monotonic() - sent >= 0.15
    proxy.delay(0)
    ends.client.sendall(b"prompt")
    assert recv_exact(_srv(ends), 6) == b"prompt"


def _fill_until_blocked(sock: socket.socket, limit: int) -> bytes:
    """Send a numbered pattern without blocking until the socket refuses more (or `limit`)."""
    sock.setblocking(False)
    sent = bytearray()
    pattern = b"".join(b"%08d" % i for i in range(limit // 8))
    try:
        while len(sent) < limit:
            try:
                n = sock.send(pattern[len(sent):len(sent) + 65536])
            except BlockingIOError:
                if select.select([], [sock], [], ABSENCE_WINDOW)[1]:
                    continue
                break
            sent += pattern[len(sent):len(sent) + n]
    finally:
        sock.settimeout(TIMEOUT)
    return bytes(sent)


def test_hold_cap_pauses_reading_then_delivers_everything(listener: socket.socket) -> None:
    cap = 4096
    with FaultProxy(listener.getsockname(), hold_cap=cap) as p:
        e = Ends(p, listener)
        try:
            p.cut()
            sent = _fill_until_blocked(e.client, 64 << 20)
            assert len(sent) < 64 << 20, "the sender never blocked: reading did not pause"
            s = p.stats()
            assert s.held_a_to_b <= cap and s.overflows >= 1
            p.heal()
            assert recv_exact(_srv(e), len(sent)) == sent
        finally:
            e.close()


def test_hold_cap_with_reset_resets_the_connection(listener: socket.socket) -> None:
    with FaultProxy(listener.getsockname(), hold_cap=4096, on_overflow="reset") as p:
        e = Ends(p, listener)
        try:
            p.cut()
            e.client.sendall(b"x" * 8192)
            with pytest.raises(ConnectionResetError):
                _srv(e).recv(1)
            wait_for(lambda: p.stats().active == 0, "the connection is gone")
            s = p.stats()
            assert (s.overflows, s.resets, s.bytes_a_to_b) == (1, 1, 0)
        finally:
            e.close()


def test_upstream_refusal_closes_the_client() -> None:
    port = socket.create_server(("127.0.0.1", 0))
    addr = port.getsockname()
    port.close()  # nothing listens there now
    with FaultProxy(addr) as p:
        # The RST may come before connect() returns, or on the first recv.
        with pytest.raises(ConnectionResetError), \
                socket.create_connection(p.address, timeout=TIMEOUT) as c:
            c.recv(1)
        wait_for(lambda: p.stats().upstream_failures == 1, "the refusal is counted")


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_close_leaks_no_thread_or_socket(listener: socket.socket) -> None:
    fds = _fds()
    p = FaultProxy(listener.getsockname())
    e = Ends(p, listener)
    p.cut()
    e.client.sendall(b"held at close")
    wait_for(lambda: p.stats().held_a_to_b == 13, "held")
    assert [t for t in threading.enumerate() if t.name == p.name]
    p.close()
    p.close()  # idempotent
    e.close()
    assert [t for t in threading.enumerate() if t.name == p.name] == []
    assert _fds() - fds == set(), "file descriptors left open"
    with pytest.raises(RuntimeError):
        p.cut()
    assert p.stats().held_a_to_b == 13  # the counters as they were at close


def _mesh_listeners(n: int) -> list[socket.socket]:
    return [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]


def test_mesh_partitions_one_node_both_ways_and_one_way() -> None:
    listeners = _mesh_listeners(3)
    nodes = {i + 1: s.getsockname() for i, s in enumerate(listeners)}
    conns: dict[tuple[int, int], Ends] = {}
    held: list[socket.socket] = []  # receivers of pings held by a cut, drained after a heal
    try:
        with ProxyMesh(nodes) as mesh:
            for src in nodes:
                for dst in nodes:
                    if src != dst:
                        conns[(src, dst)] = Ends(mesh.proxy(src, dst), listeners[dst - 1])

            def flows(src: int, dst: int) -> bool:
                """Does a ping from src reach dst on both connections between them (the one
                src dialled and the one dst dialled)? False if both are held."""
                outcomes = []
                for a, b in ((src, dst), (dst, src)):
                    e, proxy = conns[(a, b)], mesh.proxy(a, b)
                    tx, rx = (e.client, _srv(e)) if a == src else (_srv(e), e.client)
                    field = "held_a_to_b" if a == src else "held_b_to_a"

                    def is_held(p: FaultProxy = proxy, f: str = field) -> bool:
                        return bool(getattr(p.stats(), f) == 4)

                    def settled(rx: socket.socket = rx, h: Callable[[], bool] = is_held) -> bool:
                        return h() or bool(select.select([rx], [], [], 0)[0])

                    tx.sendall(b"ping")
                    wait_for(settled, f"ping {a}->{b} delivered or held")
                    if is_held():
                        held.append(rx)
                        outcomes.append(False)
                    else:
                        assert recv_exact(rx, 4) == b"ping"
                        outcomes.append(True)
                assert outcomes[0] == outcomes[1], f"{src}->{dst}: {outcomes}"
                return outcomes[0]

            def heal() -> None:
                mesh.heal()
                while held:
                    assert recv_exact(held.pop(), 4) == b"ping"

            mesh.isolate(2)
            assert [flows(2, 1), flows(1, 2), flows(2, 3), flows(3, 2)] == [False] * 4
            assert flows(1, 3) and flows(3, 1)
            heal()
            assert flows(2, 1) and flows(1, 2)

            mesh.cut_one_way(2, 1)
            assert not flows(2, 1)
            assert flows(1, 2) and flows(2, 3) and flows(3, 2)
            heal()
            assert flows(2, 1)
    finally:
        for e in conns.values():
            e.close()
        for s in listeners:
            s.close()
