"""A network-namespace lab: K nodes on a private bridge, links cut by `tc`, processes and
sockets inside the nodes, and teardown that leaves nothing behind.

Concern: the kernel plumbing of a multi-node fault test (namespaces, veth, bridge, routes, tc)
and the lifecycle of what runs inside it. It must not know what the nodes run (brokers, clients)
or what the bytes mean.

Topology (names carry a random suffix, so parallel runs and leftovers never clash)::

    rs-<sfx>-n1          rs-<sfx>-n2          rs-<sfx>-n3       node namespaces
    eth0 10.213.X.11     eth0 10.213.X.12     eth0 10.213.X.13  (htb + drop class on egress)
       |                    |                    |
    h1 ------------------ h2 ------------------ h3              in rs-<sfx>-hub, on bridge br0

Nothing is in the root namespace but one route, added FIRST: `unreachable 10.213.X.0/24`. The
lab itself has no path off the machine; the route makes sure a client left in the root
namespace (or one still running after a teardown) gets EHOSTUNREACH instead of sending lab
addresses to the default gateway. `ip route add` failing with "exists" also makes the /24 a
lock: another lab (or a leftover) holds it, so another X is drawn.

Cuts. The kernel here has no netem and no gact action, so a cut is a u32 filter on the sending
node's eth0 egress that classifies packets to the peer's address into an HTB class whose leaf
is `pfifo limit 0`: every such packet is dropped silently, as a partition does (TCP retransmits;
nothing errors locally). `cut_one_way(src, dst)` is one filter on src; `cut(a, b)` is two.
ARP still flows, which is fine: without IP nothing crosses. `dropped(node)` reads the drop
class's counter, so a test can prove packets were dropped rather than wait for silence.

Lifecycle: created by a test (or a fixture), ended by `close()` / the `with` block / a
`weakref.finalize` safety net that also runs at interpreter exit. `close()` kills the process
groups it started FIRST, closes the sockets it made, then deletes links, namespaces and the
route, each step bounded by a timeout, and every step is attempted even if one fails. A lab
whose owner died without closing is swept by `sweep_stale()` (called on every new lab) from its
record under /run/redshank-lab.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

__all__ = ["LabError", "NetnsLab", "netns_unavailable", "require_netns", "sweep_stale"]

RECORDS = Path("/run/redshank-lab")
_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")
_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    """An `ip`/`tc` command failed or timed out (the message carries the command and stderr)."""


def netns_unavailable() -> str | None:
    """Why this machine cannot run a lab (None if it can): root and iproute2 are needed."""
    if os.geteuid() != 0:
        return "network-namespace lab needs root (CI runs as root)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"network-namespace lab needs `{tool}` (iproute2)"
    return None


def require_netns() -> None:
    """pytest.skip with the reason when `netns_unavailable()`; a no-op where a lab can run."""
    reason = netns_unavailable()
    if reason is not None:
        import pytest
        pytest.skip(reason)


def _cmd(argv: Sequence[str], timeout: float, *, check: bool = True) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{' '.join(argv)}: timed out after {timeout} s") from e
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class _State:
    """Everything a teardown needs, apart from the lab object (the finalizer holds this)."""

    suffix: str
    timeout: float
    route: str | None = None
    namespaces: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (namespace, device)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)


def _threads_inside(namespaces: list[str]) -> list[str]:
    """This process's threads that are inside one of `namespaces` (clients not stopped)."""
    inodes = {}
    for ns in namespaces:
        with contextlib.suppress(OSError):
            inodes[os.stat(f"/run/netns/{ns}").st_ino] = ns
    found = []
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            inside = inodes.get(os.stat(f"/proc/self/task/{tid}/ns/net").st_ino)
            if inside is not None:
                found.append(f"thread {tid} of this process is still inside {inside}: stop the"
                             " clients before the lab goes")
    return found


def _teardown(state: _State) -> list[str]:
    """Processes first, then sockets, links, namespaces, route, record; every step attempted.
    Returns what failed (and threads of ours still inside: a client not stopped first)."""
    errors: list[str] = _threads_inside(state.namespaces)
    for proc in state.procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the whole group
            except ProcessLookupError:
                pass
            try:
                proc.wait(state.timeout)
            except subprocess.TimeoutExpired:
                errors.append(f"pid {proc.pid} still alive {state.timeout} s after SIGKILL")
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    state.procs.clear()
    for sock in state.sockets:
        sock.close()
    state.sockets.clear()
    for ns, dev in reversed(state.links):
        try:
            _cmd(["ip", "-n", ns, "link", "del", dev], state.timeout)
        except LabError as e:
            if "Cannot find device" not in str(e) and "No such file" not in str(e):
                errors.append(str(e))
    state.links.clear()
    left = []
    for ns in reversed(state.namespaces):
        try:
            _cmd(["ip", "netns", "del", ns], state.timeout)
        except LabError as e:
            errors.append(str(e))
            left.append(ns)
    state.namespaces[:] = left  # kept for the record: sweep_stale retries them
    if state.route is not None:
        try:
            _cmd(["ip", "route", "del", "unreachable", state.route], state.timeout)
            state.route = None
        except LabError as e:
            errors.append(str(e))
    if state.route is None and not state.namespaces:
        (RECORDS / f"{state.suffix}.json").unlink(missing_ok=True)
    return errors


def _finalize(state: _State) -> None:
    _teardown(state)  # safety net: nothing to report to


def _in_netns(ns: str, fn: Callable[[], _T]) -> _T:
    """Run `fn` on a fresh thread that entered namespace `ns` (sockets made there stay there);
    the caller's thread never changes namespace."""
    result: list[_T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            with _entered(ns):
                result.append(fn())
        except BaseException as e:
            error.append(e)

    t = threading.Thread(target=run, name=f"netns-{ns}", daemon=True)
    t.start()
    t.join(10.0)
    if t.is_alive():
        raise LabError(f"creating a socket in {ns} did not finish within 10 s")
    if error:
        raise error[0]
    return result[0]


@contextlib.contextmanager
def _entered(ns: str) -> Iterator[None]:
    """Move the calling thread into `ns` and back (threads started meanwhile inherit it)."""
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns({ns})")
        finally:
            os.close(fd)
        try:
            yield
        finally:
            if _libc.setns(back, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original namespace")
    finally:
        os.close(back)


def sweep_stale(timeout: float = 10.0) -> list[str]:
    """Tear down labs recorded under /run/redshank-lab whose owner process is gone (a test run
    killed before its teardown); returns their suffixes."""
    swept = []
    for path in sorted(RECORDS.glob("*.json")) if RECORDS.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            os.kill(int(rec["pid"]), 0)
            continue  # its owner still runs
        except ProcessLookupError:
            pass
        except (OSError, ValueError, KeyError):
            continue
        state = _State(suffix=str(rec["suffix"]), timeout=timeout, route=rec.get("route"),
                       namespaces=list(rec.get("namespaces", [])))
        state.namespaces = [ns for ns in state.namespaces if Path("/run/netns", ns).exists()]
        _teardown(state)
        swept.append(state.suffix)
    return swept


class NetnsLab:
    """Nodes 1..K in their own network namespaces on one private /24 (see the module doc).

    Created by a test; ended by `close()` (or the `with` block, or the finalizer)."""

    def __init__(self, nodes: int = 3, *, prefix: str = "10.213", timeout: float = 10.0) -> None:
        if not 1 <= nodes <= 200:
            raise ValueError("1..200 nodes")
        self.suffix = secrets.token_hex(3)
        self.timeout = timeout
        self.nodes = list(range(1, nodes + 1))
        self._state = _State(suffix=self.suffix, timeout=timeout)
        self._finalizer = weakref.finalize(self, _finalize, self._state)
        self._cuts: set[tuple[int, int]] = set()
        self.hub = f"rs-{self.suffix}-hub"
        sweep_stale(timeout)
        try:
            self.subnet = self._claim_subnet(prefix)
            self._record()
            self._build()
        except BaseException:
            self.close()
            raise

    # -- names and addresses -----------------------------------------------------------------

    def ns(self, node: int) -> str:
        self._check(node)
        return f"rs-{self.suffix}-n{node}"

    def addr(self, node: int) -> str:
        self._check(node)
        return f"{self.subnet.rsplit('.', 1)[0]}.{10 + node}"

    @property
    def route(self) -> str | None:
        """The root namespace's `unreachable` route for the lab's /24 (None once closed)."""
        return self._state.route

    # -- processes and sockets inside a node -------------------------------------------------

    def run(self, node: int, argv: Sequence[str], *, stdin: int | IO[Any] | None = None,
            stdout: int | IO[Any] | None = None, stderr: int | IO[Any] | None = None,
            env: Mapping[str, str] | None = None,
            cwd: str | Path | None = None) -> subprocess.Popen[bytes]:
        """Start `argv` inside `node` (`ip netns exec` execs it, so the pid is the program's) in
        a session of its own; `close()` SIGKILLs its process group."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(node), *argv], stdin=stdin,
                                stdout=stdout, stderr=stderr, cwd=cwd,
                                env=dict(env) if env is not None else None,
                                start_new_session=True)
        self._state.procs.append(proc)
        return proc

    def new_socket(self, node: int, family: int = socket.AF_INET,
                   kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket that lives in `node`'s namespace (closed by `close()` if still open)."""
        sock = _in_netns(self.ns(node), lambda: socket.socket(family, kind))
        self._state.sockets.append(sock)
        return sock

    def listen(self, node: int, port: int = 0, backlog: int = 16) -> socket.socket:
        """A TCP listening socket on `node`'s address."""
        sock = self.new_socket(node)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.addr(node), port))
        sock.listen(backlog)
        return sock

    def connect(self, node: int, address: tuple[str, int], timeout: float) -> socket.socket:
        """A TCP connection from `node` to `address`, with `timeout` on connect and I/O."""
        sock = self.new_socket(node)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock

    @contextlib.contextmanager
    def entered(self, node: int) -> Iterator[None]:
        """Run the block with the calling thread inside `node`'s namespace (for in-process
        clients: sockets and threads they create there stay there)."""
        with _entered(self.ns(node)):
            yield

    # -- faults ------------------------------------------------------------------------------

    def cut_one_way(self, src: int, dst: int) -> None:
        """Drop every IP packet from `src` to `dst` (dst to src still flows)."""
        self._check(dst)
        if (src, dst) in self._cuts:
            return
        self._tc(src, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip",
                 "pref", str(100 + dst), "u32", "match", "ip", "dst", f"{self.addr(dst)}/32",
                 "flowid", "1:2")
        self._cuts.add((src, dst))

    def cut(self, a: int, b: int) -> None:
        """Drop every packet between `a` and `b`, both ways."""
        self.cut_one_way(a, b)
        self.cut_one_way(b, a)

    def partition(self, *groups: Collection[int]) -> None:
        """Cut every pair of nodes in different groups (a node in no group is alone)."""
        side = {n: i for i, g in enumerate(groups) for n in g}
        for a in self.nodes:
            for b in self.nodes:
                if a < b and side.get(a, -a) != side.get(b, -b):
                    self.cut(a, b)

    def isolate(self, node: int) -> None:
        self.partition([node], [n for n in self.nodes if n != node])

    def heal_one_way(self, src: int, dst: int) -> None:
        """End the cut of packets from `src` to `dst` (if any)."""
        if (src, dst) in self._cuts:
            self._tc(src, "filter", "del", "dev", "eth0", "parent", "1:", "pref", str(100 + dst))
            self._cuts.discard((src, dst))

    def heal(self) -> None:
        """End every cut."""
        for src, dst in sorted(self._cuts):
            self.heal_one_way(src, dst)

    @property
    def cuts(self) -> frozenset[tuple[int, int]]:
        """The (src, dst) pairs whose packets are dropped now."""
        return frozenset(self._cuts)

    def dropped(self, node: int) -> int:
        """Packets `node` has dropped on a cut so far (the drop class's counter)."""
        out = self._tc(node, "-s", "-j", "qdisc", "show", "dev", "eth0")
        for q in json.loads(out):
            if q.get("handle") == "2:":
                return int(q.get("drops", 0))
        raise LabError(f"{self.ns(node)}: no drop qdisc on eth0")

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Kill the processes started here, close the sockets made here, then delete links,
        namespaces and the route. Idempotent; raises LabError listing what could not be
        removed (after trying everything)."""
        if not self._finalizer.alive:
            return
        self._finalizer.detach()
        errors = _teardown(self._state)
        if errors:
            raise LabError("lab teardown incomplete:\n" + "\n".join(errors))

    def __enter__(self) -> NetnsLab:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- building ----------------------------------------------------------------------------

    def _claim_subnet(self, prefix: str) -> str:
        """Add the unreachable route for a free 10.213.X.0/24 (first thing the lab does)."""
        rng = random.Random(secrets.randbits(64))
        for third in rng.sample(range(1, 255), 40):
            subnet = f"{prefix}.{third}.0/24"
            try:
                _cmd(["ip", "route", "add", "unreachable", subnet], self.timeout)
            except LabError as e:
                if "exists" in str(e):
                    continue
                raise
            self._state.route = subnet
            return subnet
        raise LabError(f"no free /24 under {prefix}.0.0/16 for a lab")

    def _record(self) -> None:
        RECORDS.mkdir(parents=True, exist_ok=True)
        names = [self.hub, *(self.ns(n) for n in self.nodes)]
        (RECORDS / f"{self.suffix}.json").write_text(json.dumps(
            {"pid": os.getpid(), "suffix": self.suffix, "route": self._state.route,
             "namespaces": names}))

    def _ip(self, *args: str) -> None:
        _cmd(["ip", *args], self.timeout)

    def _tc(self, node: int, *args: str) -> str:
        return _cmd(["tc", "-n", self.ns(node), *args], self.timeout)

    def _add_ns(self, ns: str) -> None:
        self._ip("netns", "add", ns)
        self._state.namespaces.append(ns)
        self._ip("-n", ns, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._add_ns(self.hub)
        self._ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        self._state.links.append((self.hub, "br0"))
        self._ip("-n", self.hub, "link", "set", "br0", "up")
        for n in self.nodes:
            ns = self.ns(n)
            self._add_ns(ns)
            self._ip("link", "add", "eth0", "netns", ns, "type", "veth",
                     "peer", "name", f"h{n}", "netns", self.hub)
            self._state.links.append((ns, "eth0"))
            self._ip("-n", self.hub, "link", "set", f"h{n}", "master", "br0", "up")
            self._ip("-n", ns, "addr", "add", f"{self.addr(n)}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")
            # Egress: everything to class 1:1 unless a cut's filter sends it to 1:2, whose
            # leaf holds no packet (pfifo limit 0), so it drops.
            for args in (("qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb",
                          "default", "1"),
                         ("class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1",
                          "htb", "rate", "50gbit", "quantum", "60000"),
                         ("class", "add", "dev", "eth0", "parent", "1:", "classid", "1:2",
                          "htb", "rate", "50gbit", "quantum", "60000"),
                         ("qdisc", "add", "dev", "eth0", "parent", "1:2", "handle", "2:",
                          "pfifo", "limit", "0")):
                self._tc(n, *args)

    def _check(self, node: int) -> None:
        if node not in self.nodes:
            raise ValueError(f"no node {node} (nodes {self.nodes})")
