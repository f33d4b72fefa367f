"""NetnsLab for real (root; skipped with the reason otherwise): TCP between namespaces works, a
cut drops both ways (proved by the drop counter), a one-way cut passes the other direction, a
heal resumes the same connection, processes run inside nodes, and teardown removes namespaces,
links and the unreachable route even when the test fails midway."""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lab.netns import RECORDS, LabError, NetnsLab, require_netns, sweep_stale

TIMEOUT = 10.0
ABSENCE_WINDOW = 0.3  # only ever asserted as absence, next to a counter proving the drop


def wait_for(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, f"closed after {len(buf)} of {n} bytes"
        buf += chunk
    return buf


def assert_nothing_arrives(sock: socket.socket) -> None:
    assert not select.select([sock], [], [], ABSENCE_WINDOW)[0], "bytes crossed a cut"


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=TIMEOUT,
                          check=True).stdout


def assert_gone(suffix: str, subnet: str) -> None:
    assert f"rs-{suffix}-" not in _ip("netns", "list")
    assert subnet not in _ip("route", "show")
    assert not (RECORDS / f"{suffix}.json").exists()


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    require_netns()
    with NetnsLab(3) as lab:
        yield lab
    assert_gone(lab.suffix, lab.subnet)


def _pair(lab: NetnsLab, a: int, b: int) -> tuple[socket.socket, socket.socket]:
    """A TCP connection from node a to node b: (a's end, b's end)."""
    listener = lab.listen(b)
    client = lab.connect(a, listener.getsockname(), TIMEOUT)
    listener.settimeout(TIMEOUT)
    server, _ = listener.accept()
    server.settimeout(TIMEOUT)
    listener.close()
    return client, server


def test_unreachable_route_is_up_while_the_lab_is(lab: NetnsLab) -> None:
    assert f"unreachable {lab.subnet}" in _ip("route", "show")
    assert lab.route == lab.subnet
    with pytest.raises(OSError) as exc:  # from the root namespace: refused at once, not routed
        socket.create_connection((lab.addr(2), 9), timeout=TIMEOUT).close()
    assert exc.value.errno == errno.EHOSTUNREACH
    names = _ip("netns", "list")
    assert all(lab.ns(n) in names for n in lab.nodes) and lab.hub in names


def test_tcp_between_namespaces_and_a_cut_drops_both_ways(lab: NetnsLab) -> None:
    client, server = _pair(lab, 1, 2)
    client.sendall(b"ping")
    assert recv_exact(server, 4) == b"ping"
    server.sendall(b"pong")
    assert recv_exact(client, 4) == b"pong"

    lab.cut(1, 2)
    drops1, drops2 = lab.dropped(1), lab.dropped(2)
    client.sendall(b"held1")
    server.sendall(b"held2")
    wait_for(lambda: lab.dropped(1) > drops1 and lab.dropped(2) > drops2,
             "both nodes drop packets to each other")
    assert_nothing_arrives(server)
    assert_nothing_arrives(client)

    lab.heal()  # the same connection resumes: TCP retransmits what the cut dropped
    assert recv_exact(server, 5) == b"held1"
    assert recv_exact(client, 5) == b"held2"
    assert lab.cuts == frozenset()


def test_one_way_cut_passes_the_other_direction(lab: NetnsLab) -> None:
    client, server = _pair(lab, 1, 2)
    lab.cut_one_way(1, 2)
    server.sendall(b"flows")
    assert recv_exact(client, 5) == b"flows"
    drops = lab.dropped(1)
    client.sendall(b"held")
    wait_for(lambda: lab.dropped(1) > drops, "node 1 drops packets to node 2")
    assert_nothing_arrives(server)
    assert lab.dropped(2) == 0
    lab.heal_one_way(1, 2)
    assert recv_exact(server, 4) == b"held"


def test_isolating_a_node_keeps_the_others_connected(lab: NetnsLab) -> None:
    lab.isolate(2)
    assert lab.cuts == {(1, 2), (2, 1), (2, 3), (3, 2)}
    client, server = _pair(lab, 1, 3)
    client.sendall(b"ok")
    assert recv_exact(server, 2) == b"ok"
    listener = lab.listen(2)
    with pytest.raises(TimeoutError):  # the SYN is dropped: connect never completes
        lab.connect(1, listener.getsockname(), ABSENCE_WINDOW)
    assert lab.dropped(1) > 0
    lab.heal()
    lab.connect(1, listener.getsockname(), TIMEOUT).close()


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"no line yet: {buf!r}"
        chunk = os.read(fd, 1)
        assert chunk, f"stdout closed: {buf!r}"
        buf += chunk
    return buf


ECHO_SERVER = """
import socket, sys
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
while data := conn.recv(4096):
    conn.sendall(data)
"""


def test_process_runs_inside_a_node_and_close_kills_it() -> None:
    require_netns()
    with NetnsLab(2) as lab:
        proc = lab.run(2, [sys.executable, "-c", ECHO_SERVER, lab.addr(2)],
                       stdout=subprocess.PIPE)
        port = int(_read_line(proc, TIMEOUT))
        with lab.connect(1, (lab.addr(2), port), TIMEOUT) as c:
            c.sendall(b"echo")
            assert recv_exact(c, 4) == b"echo"
        sleeper = lab.run(1, [sys.executable, "-c", "import time; time.sleep(600)"])
    assert sleeper.returncode == -9
    assert proc.returncode in (0, -9)
    assert_gone(lab.suffix, lab.subnet)


def test_close_after_a_failure_midway_removes_everything() -> None:
    require_netns()
    with pytest.raises(RuntimeError, match="midway"), NetnsLab(2) as lab:
        sleeper = lab.run(1, [sys.executable, "-c", "import time; time.sleep(600)"])
        lab.cut(1, 2)
        lab.listen(2)
        raise RuntimeError("the test failed midway")
    assert sleeper.returncode == -9
    assert_gone(lab.suffix, lab.subnet)
    lab.close()  # idempotent


def test_a_lab_whose_owner_died_is_swept() -> None:
    require_netns()
    lab = NetnsLab(2)
    try:
        dead = subprocess.Popen(["true"])
        dead.wait(TIMEOUT)
        record = RECORDS / f"{lab.suffix}.json"
        rec = json.loads(record.read_text())
        assert rec["route"] == lab.subnet and lab.ns(1) in rec["namespaces"]
        record.write_text(json.dumps({**rec, "pid": dead.pid}))  # as if its pytest were killed
        lab._finalizer.detach()
        assert lab.suffix in sweep_stale()
        assert_gone(lab.suffix, lab.subnet)
    finally:
        lab.close()


def test_entered_moves_only_the_calling_thread_and_back(lab: NetnsLab) -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    listener = lab.listen(2)
    with lab.entered(1):
        assert os.readlink("/proc/thread-self/ns/net") != before
        conn = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
    assert os.readlink("/proc/thread-self/ns/net") == before
    conn.close()


def test_close_names_a_client_thread_still_inside() -> None:
    require_netns()
    lab = NetnsLab(2)
    inside, release = threading.Event(), threading.Event()

    def client() -> None:
        with lab.entered(1):
            inside.set()
            release.wait(TIMEOUT)

    t = threading.Thread(target=client)
    t.start()
    try:
        assert inside.wait(TIMEOUT)
        with pytest.raises(LabError, match=r"still inside rs-\w+-n1: stop the clients"):
            lab.close()
    finally:
        release.set()
        t.join(TIMEOUT)
    assert_gone(lab.suffix, lab.subnet)  # torn down all the same


def test_unknown_node_and_bad_command_are_errors(lab: NetnsLab) -> None:
    with pytest.raises(ValueError):
        lab.cut(1, 9)
    with pytest.raises(LabError, match="exit"):
        lab._tc(1, "filter", "add", "dev", "nonexistent0")
