"""A TCP proxy a test controls, put between nodes on loopback: cut, one-way cut, delay, heal.

Concern: moving the bytes of TCP connections from a listening port to one target and, on the
test's word, holding them (a partition), resetting connections, or delaying them. It must not
know what the bytes mean (Kafka, Raft RPCs): it never parses, drops or reorders inside a stream.

The fault model (why hold, not drop). A real partition drops *packets*, but TCP retransmits them:
the application never sees a gap in a byte stream, it sees bytes stop arriving, its send buffer
fill, and, after a heal, the stream resume where it stopped (or its own timeout give up). A proxy
that dropped bytes mid-stream would corrupt framing instead, which tests a decoder, not a
partition. So:

- `cut()`: both directions stop delivering. Bytes already read from a socket stay queued in the
  proxy (up to `hold_cap` per direction and connection); at the cap the proxy stops reading
  (`on_overflow="pause"`, the kernel buffers fill and the sender blocks, as with a real
  partition) or resets the connection (`on_overflow="reset"`, a TCP user timeout). Either way
  memory is bounded (`hold_cap`, plus the stream reader's 64 KiB buffer, per direction and
  connection) and `ProxyStats.overflows` counts it. New connections are accepted (the
  proxy's own listening socket is not partitioned) but get nothing: the upstream connection is
  opened only after a heal, as a SYN cannot cross a partition.
- `cut(reset=True)`: as `cut()`, and every existing connection is reset (RST to both sides).
- `cut_one_way("a_to_b" | "b_to_a")`: only that direction holds; a_to_b is from the connecting
  side (client) to the target. Cuts add up; `heal()` ends them all (or one direction).
- `delay(ms)`: bytes read from now on are delivered `ms` later (per chunk, order kept).

Lifecycle: `FaultProxy(...)` binds at once (`.port` is known) and serves from a daemon thread
with its own asyncio loop; `close()` (or leaving the `with` block) stops the loop, closes every
socket and joins the thread. All controls apply on the loop before they return, so after
`cut()` returns no further byte is written in a cut direction.

`ProxyMesh` puts one `FaultProxy` on every ordered pair of nodes (src dials `mesh.address(src,
dst)` to reach dst) and cuts by node: `cut(a, b)`, `cut_one_way(src, dst)`, `isolate(n)`,
`partition({1, 3}, {2})`, `heal()`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal, TypeVar

__all__ = ["A_TO_B", "B_TO_A", "Direction", "FaultProxy", "ProxyMesh", "ProxyStats"]

Direction = Literal["a_to_b", "b_to_a"]
A_TO_B: Direction = "a_to_b"
B_TO_A: Direction = "b_to_a"
_DIRECTIONS: tuple[Direction, Direction] = (A_TO_B, B_TO_A)
_CHUNK = 65536
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """A snapshot of one proxy's counters (bytes are delivered bytes; held are queued now)."""

    bytes_a_to_b: int
    bytes_b_to_a: int
    held_a_to_b: int
    held_b_to_a: int
    accepted: int
    active: int
    upstream_failures: int
    resets: int
    overflows: int


def _rst(w: asyncio.StreamWriter) -> None:
    sock = w.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already closed
    w.transport.abort()


class _Conn:
    """One proxied connection: two directions, each a reader filling a queue and a writer
    draining it while the direction flows. Lives on the proxy's loop; ends when both
    directions have carried their EOF, or on any error or reset (then both sides get RST)."""

    def __init__(self, proxy: FaultProxy, client_r: asyncio.StreamReader,
                 client_w: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client_r = client_r
        self.client_w = client_w
        self.upstream_w: asyncio.StreamWriter | None = None
        self.queues: dict[Direction, deque[tuple[float, bytes]]] = {d: deque() for d in
                                                                     _DIRECTIONS}
        self.queued: dict[Direction, int] = dict.fromkeys(_DIRECTIONS, 0)
        self.reset = False
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        """RST both sides (SO_LINGER 0, then close without flushing) and stop the directions'
        tasks; `run` then ends (the caller notifies `cond` so a wait for a heal sees it)."""
        self.reset = True
        for w in (self.client_w, self.upstream_w):
            if w is not None:
                _rst(w)
        for t in self.tasks:
            t.cancel()

    def was_reset(self) -> bool:
        return self.reset  # a call, so a check after an await is not narrowed away

    async def run(self) -> None:
        p = self.proxy
        self.tasks.append(asyncio.create_task(self._read(A_TO_B, self.client_r)))
        try:
            async with p.cond:  # a SYN cannot cross a cut: connect upstream after the heal
                await p.cond.wait_for(lambda: self.reset or not p.cut_directions)
            if self.reset:
                return
            try:
                up_r, up_w = await asyncio.wait_for(
                    asyncio.open_connection(*p.target), p.connect_timeout)
            except (TimeoutError, OSError):
                p.counters["upstream_failures"] += 1
                self.abort()
                return
            self.upstream_w = up_w
            if self.was_reset():  # reset while connecting: the target saw the connection
                _rst(up_w)
                return
            self.tasks += [asyncio.create_task(self._read(B_TO_A, up_r)),
                           asyncio.create_task(self._write(A_TO_B, up_w)),
                           asyncio.create_task(self._write(B_TO_A, self.client_w))]
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                self.abort()
        finally:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for d in _DIRECTIONS:
                self.queues[d].clear()
                self.queued[d] = 0
            if not self.reset:
                for w in (self.client_w, self.upstream_w):
                    if w is not None:
                        w.close()

    async def _read(self, d: Direction, reader: asyncio.StreamReader) -> None:
        p = self.proxy
        loop = asyncio.get_running_loop()
        def must_reset() -> bool:  # full while cut: a TCP user timeout would fire
            return p.on_overflow == "reset" and d in p.cut_directions

        while True:
            if self.queued[d] >= p.hold_cap:
                p.counters["overflows"] += 1
                async with p.cond:  # full but flowing (a slow receiver): wait, whatever mode
                    await p.cond.wait_for(
                        lambda: self.queued[d] < p.hold_cap or must_reset())
                if self.queued[d] >= p.hold_cap:
                    p.counters["resets"] += 1
                    raise ConnectionResetError("hold cap reached while cut")
            data = await reader.read(min(_CHUNK, p.hold_cap))
            self.queues[d].append((loop.time() + p.delay_s, data))
            self.queued[d] += len(data)
            async with p.cond:
                p.cond.notify_all()
            if not data:
                return

    async def _write(self, d: Direction, writer: asyncio.StreamWriter) -> None:
        p = self.proxy
        loop = asyncio.get_running_loop()
        queue = self.queues[d]
        while True:
            async with p.cond:
                await p.cond.wait_for(lambda: bool(queue) and d not in p.cut_directions)
            at, data = queue[0]
            if at > loop.time():
                await asyncio.sleep(at - loop.time())
                continue  # the direction may have been cut meanwhile
            queue.popleft()
            self.queued[d] -= len(data)
            async with p.cond:
                p.cond.notify_all()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            p.counters[f"bytes_{d}"] += len(data)
            await writer.drain()


class FaultProxy:
    """A controllable TCP proxy from `listen` to `target` (see the module docstring).

    Created and closed by a test; serves from its own daemon thread and event loop."""

    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0), *,
                 hold_cap: int = 1 << 20, on_overflow: Literal["pause", "reset"] = "pause",
                 connect_timeout: float = 5.0, name: str = "") -> None:
        if hold_cap <= 0:
            raise ValueError("hold_cap must be positive")
        self.target = target
        self.hold_cap = hold_cap
        self.on_overflow = on_overflow
        self.connect_timeout = connect_timeout
        self.name = name or f"proxy->{target[0]}:{target[1]}"
        self.delay_s = 0.0
        self.cut_directions: set[Direction] = set()
        self.counters: dict[str, int] = dict.fromkeys(
            ("bytes_a_to_b", "bytes_b_to_a", "accepted", "upstream_failures", "resets",
             "overflows"), 0)
        self._conns: set[_Conn] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closed = False
        self._last_stats: ProxyStats | None = None
        self._sock = socket.create_server(listen, backlog=128)
        self.host, self.port = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self.cond: asyncio.Condition
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.name,
                                        daemon=True)
        self._thread.start()
        try:
            self._call(self._start)
        except BaseException:
            self.close()
            raise

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    # -- controls (any thread; each applies on the loop before returning) --------------------

    def cut(self, *, reset: bool = False) -> None:
        """Both directions hold; with `reset`, existing connections are also reset."""
        self._call(lambda: self._set_cut(set(_DIRECTIONS), reset))

    def cut_one_way(self, direction: Direction) -> None:
        """Hold `direction` only (added to any cut already in place)."""
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, not {direction!r}")
        self._call(lambda: self._set_cut(self.cut_directions | {direction}, False))

    def heal(self, direction: Direction | None = None) -> None:
        """End every cut (or only `direction`'s); held bytes are then delivered in order."""
        self._call(lambda: self._set_cut(
            set() if direction is None else self.cut_directions - {direction}, False))

    def delay(self, ms: float) -> None:
        """Deliver bytes read from now on `ms` milliseconds later (0 ends the delay)."""
        async def set_delay() -> None:
            self.delay_s = max(0.0, ms / 1000.0)
        self._call(set_delay)

    def reset_connections(self) -> None:
        """RST every existing connection (without cutting)."""
        self._call(self._reset_all)

    def stats(self) -> ProxyStats:
        """The counters now (after `close()`: as they were when it closed)."""
        if self._closed:
            if self._last_stats is None:
                raise RuntimeError(f"{self.name} is closed")
            return self._last_stats

        async def snapshot() -> ProxyStats:
            c = self.counters
            return ProxyStats(
                bytes_a_to_b=c["bytes_a_to_b"], bytes_b_to_a=c["bytes_b_to_a"],
                held_a_to_b=sum(x.queued[A_TO_B] for x in self._conns),
                held_b_to_a=sum(x.queued[B_TO_A] for x in self._conns),
                accepted=c["accepted"], active=len(self._conns),
                upstream_failures=c["upstream_failures"], resets=c["resets"],
                overflows=c["overflows"])
        return self._call(snapshot)

    def close(self, timeout: float = 10.0) -> None:
        """Reset every connection, stop listening, stop the loop and join its thread."""
        if self._closed:
            return
        if self._loop.is_running():
            try:
                self._last_stats = self.stats()
            except Exception:
                pass  # the loop is wedged: close anyway
        self._closed = True
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"{self.name}: loop thread did not stop within {timeout} s")
        self._loop.close()
        self._sock.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- loop side ---------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Awaitable[_T]], timeout: float = 10.0) -> _T:
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")

        async def run() -> _T:
            return await fn()
        fut: Future[_T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return fut.result(timeout)

    async def _start(self) -> None:
        self.cond = asyncio.Condition()
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def _set_cut(self, directions: set[Direction], reset: bool) -> None:
        self.cut_directions = directions
        if reset:
            await self._reset_all()
        async with self.cond:
            self.cond.notify_all()

    async def _reset_all(self) -> None:
        for conn in list(self._conns):
            if not conn.reset:
                conn.abort()
                self.counters["resets"] += 1
        async with self.cond:
            self.cond.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.counters["accepted"] += 1
        conn = _Conn(self, reader, writer)
        self._conns.add(conn)
        self._handlers.add(task)
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)
            self._handlers.discard(task)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()
        handlers = list(self._handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), 5)


NodeId = int


class ProxyMesh:
    """One `FaultProxy` per ordered pair of nodes: node `src` dials `address(src, dst)` to
    reach `dst`'s RPC port; cuts are by node and direction of data flow.

    Data from `src` to `dst` crosses two proxies: the one `src` dialled (as a_to_b) and the
    one `dst` dialled to `src` (as b_to_a, responses) -- a one-way cut holds both."""

    def __init__(self, nodes: Mapping[NodeId, tuple[str, int]], *, hold_cap: int = 1 << 20,
                 on_overflow: Literal["pause", "reset"] = "pause") -> None:
        self.nodes = dict(nodes)
        self.proxies: dict[tuple[NodeId, NodeId], FaultProxy] = {}
        try:
            for src in self.nodes:
                for dst, target in self.nodes.items():
                    if src != dst:
                        self.proxies[(src, dst)] = FaultProxy(
                            target, name=f"mesh-{src}->{dst}", hold_cap=hold_cap,
                            on_overflow=on_overflow)
        except BaseException:
            self.close()
            raise

    def address(self, src: NodeId, dst: NodeId) -> tuple[str, int]:
        """Where `src` connects to reach `dst`."""
        return self.proxies[(src, dst)].address

    def proxy(self, src: NodeId, dst: NodeId) -> FaultProxy:
        return self.proxies[(src, dst)]

    def cut_one_way(self, src: NodeId, dst: NodeId) -> None:
        """Data from `src` to `dst` is held; `dst` to `src` still flows."""
        self.proxies[(src, dst)].cut_one_way(A_TO_B)
        self.proxies[(dst, src)].cut_one_way(B_TO_A)

    def cut(self, a: NodeId, b: NodeId, *, reset: bool = False) -> None:
        """Both directions between `a` and `b` hold."""
        self.proxies[(a, b)].cut(reset=reset)
        self.proxies[(b, a)].cut(reset=reset)

    def partition(self, *groups: Collection[NodeId], reset: bool = False) -> None:
        """Cut every pair of nodes in different groups, both ways (nodes in no group are cut
        from everyone else)."""
        side = {n: i for i, g in enumerate(groups) for n in g}
        for a, b in self._pairs():
            if side.get(a, -1 - a) != side.get(b, -1 - b):
                self.cut(a, b, reset=reset)

    def isolate(self, node: NodeId, *, reset: bool = False) -> None:
        """Cut `node` from every other node, both ways."""
        self.partition([node], [n for n in self.nodes if n != node], reset=reset)

    def heal(self) -> None:
        for p in self.proxies.values():
            p.heal()

    def stats(self) -> dict[tuple[NodeId, NodeId], ProxyStats]:
        return {pair: p.stats() for pair, p in self.proxies.items()}

    def close(self) -> None:
        errors: list[BaseException] = []
        for p in self.proxies.values():
            try:
                p.close()
            except Exception as e:  # close them all, then report
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self) -> ProxyMesh:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _pairs(self) -> Iterable[tuple[NodeId, NodeId]]:
        ids = sorted(self.nodes)
        return ((a, b) for i, a in enumerate(ids) for b in ids[i + 1:])
