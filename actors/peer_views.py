"""What other nodes know, asked over the internal RPC for Metadata and the admin paths in
cluster mode: their partition leaders' views, and (for a node hosting no controller replica)
the seeds' controller.

Concern: on core 0 of a cluster-mode node, this node's view of its replicas (`ReplicaLeaders`
asked of its cores' partition managers: each replica's leader and term, the in-sync replicas
where it leads), the other nodes' views of the partitions they lead, asked of their core 0
(`LEADERS_METHOD`) and cached `ttl_s` per node, so Metadata, which clients send often, costs at
most one call per node per `ttl_s` (and none while the cache is fresh); and one call answered by
the first seed that can (`ask_any`, starting from the one that answered last). A node that does
not answer within `timeout_s` is left out (its partitions' in-sync replicas are then not known
here). The leaders payload is JSON: {partition name: [leader, term, [in-sync node ids]]}.

Node liveness (Redpanda's `node_status_backend`: one small call per node pair per interval, the
time of each peer's last answer kept): `watch(members)` pings every other member's core 0
(`PING_METHOD`) every `ping_every_s`, one call in flight per peer; `offline(nodes)` is the nodes
not heard from within `dead_after_s`, a dictionary lookup per node, no call. Metadata lists their
replicas in `offline_replicas` and leaves them out of the ISR (Kafka's rule for a replica on a
dead broker). A peer first watched gets `dead_after_s` of grace; a paused one (SIGSTOP) stops
answering like a dead one; one that returns is online at its first answer.

    Metadata --> ControllerService._describe --> local(cores)  --ReplicaLeaders--> managers
                                             --> remote(nodes) --LEADERS_METHOD--> their core 0
    (no controller replica here)             --> ask_any(seeds, DESCRIBE_METHOD, ...)

Must not know: the controller's tables, Kafka's wire shapes, Raft, what the other methods mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import structlog

from redshank.actors._async import resolve
from redshank.actors.partition_manager import MANAGER, ReplicaLeaders
from redshank.actors.rpc import RpcClient, RpcError, RpcRemoteError, RpcServer, RpcTimeout
from redshank.actors.runtime import CoreRouter
from redshank.cluster.raft.types import NodeId

__all__ = ["ALTER_CONFIGS_METHOD", "DEAD_AFTER_S", "DESCRIBE_METHOD", "LEADERS_METHOD",
           "PING_METHOD", "PRODUCER_ID_METHOD", "TOPIC_CONFIGS_METHOD",
           "Leaders", "PeerViews"]

# Methods of core 0 in cluster mode (the 0x03xx range: views for the Kafka request paths).
LEADERS_METHOD = 0x0300  # call: b"" -> JSON of the partitions this node's replicas lead
DESCRIBE_METHOD = 0x0301  # call: JSON names (null: all) -> the controller's `ClusterView`
PRODUCER_ID_METHOD = 0x0302  # call: b"" -> int64 producer id from the answering node's block
TOPIC_CONFIGS_METHOD = 0x0303  # call: JSON names -> JSON {name: [topic id, partitions, configs]}
ALTER_CONFIGS_METHOD = 0x0304  # call: JSON config changes -> JSON {topic: [error code, message]}
PING_METHOD = 0x0305  # call: b"" -> b"" (node liveness)

PING_EVERY_S = 0.25
# A peer silent this long is offline: eight missed pings, past a busy loop's hiccup on a shared
# 2-CPU machine, and under Raft's election timeout plus a client's metadata refresh.
DEAD_AFTER_S = 2.0

# Partition name -> (leader node id, term, in-sync node ids; () unless reported by the leader).
Leaders = dict[str, tuple[int, int, tuple[int, ...]]]

_log = structlog.get_logger("redshank.peer_views")


class PeerViews:
    """One per cluster-mode node, on core 0's loop: created and started by the node's
    `ControllerService`, closed with it (its clients closed, its method unregistered)."""

    def __init__(self, me: NodeId, router: CoreRouter | None, server: RpcServer,
                 ttl_s: float = 1.0, timeout_s: float = 0.5, ping_every_s: float = PING_EVERY_S,
                 dead_after_s: float = DEAD_AFTER_S) -> None:
        self.me = me
        self.router = router
        self.server = server
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._clients: dict[tuple[str, int], RpcClient] = {}
        self._cache: dict[NodeId, tuple[float, Leaders]] = {}
        self._asking: dict[NodeId, asyncio.Task[Leaders | None]] = {}
        self._first = 0  # the seed `ask_any` tries first: the one that answered last
        self.ping_every_s = ping_every_s
        self.dead_after_s = dead_after_s
        self._heard: dict[NodeId, float] = {}  # peer -> monotonic time of its last answer
        self._pinging: dict[NodeId, asyncio.Task[None]] = {}
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.server.register(LEADERS_METHOD, self._serve)
        self.server.register(PING_METHOD, _pong)

    async def close(self) -> None:
        self.server.unregister(LEADERS_METHOD)
        self.server.unregister(PING_METHOD)
        if self._watch is not None:
            self._watch.cancel()
        for task in [*self._asking.values(), *self._pinging.values()]:
            task.cancel()
        for client in self._clients.values():
            await client.close()
        self._clients = {}

    # ---- liveness -------------------------------------------------------------------------

    def watch(self, members: Callable[[], Mapping[NodeId, tuple[str, int]]]) -> None:
        """Ping, every `ping_every_s` until `close`, each node `members()` gives (node id -> its
        core 0's RPC address; this node is skipped)."""
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._pings(members))
            self._watch.add_done_callback(self._watch_ended)

    def offline(self, nodes: Iterable[int]) -> frozenset[int]:
        """Those of `nodes` (other than this one) not heard from within `dead_after_s`; a node
        never watched is not said offline (nothing is known of it)."""
        limit = time.monotonic() - self.dead_after_s
        return frozenset(n for n in nodes if n != self.me
                         and (heard := self._heard.get(NodeId(n))) is not None and heard < limit)

    async def _pings(self, members: Callable[[], Mapping[NodeId, tuple[str, int]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            for node, addr in members().items():
                if node == self.me or node in self._pinging:
                    continue
                self._heard.setdefault(node, now)  # grace: not offline before it could answer
                task = loop.create_task(self._ping(node, addr))
                self._pinging[node] = task
                task.add_done_callback(functools.partial(self._pinged, node))
            await asyncio.sleep(self.ping_every_s)

    def _watch_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Liveness is no longer known: no node is said offline for it.
            self._heard.clear()
            _log.error("liveness_watch_failed", error=repr(task.exception()))

    async def _ping(self, node: NodeId, addr: tuple[str, int]) -> None:
        try:
            await self._client(addr).call(PING_METHOD, b"", timeout=self.dead_after_s)
        except RpcRemoteError:
            pass  # it answered (a node that does not know the method is alive all the same)
        except RpcError:
            # Refused, reset or timed out: not heard. Not asked again before the next round
            # (the client's reconnect backoff paces a dead peer's connects).
            await asyncio.sleep(self.ping_every_s)
            return
        self._heard[node] = time.monotonic()

    def _pinged(self, node: NodeId, task: asyncio.Task[None]) -> None:
        if self._pinging.get(node) is task:
            del self._pinging[node]

    # ---- leaders views ----------------------------------------------------------------------

    async def local(self, cores: Iterable[int] | None = None) -> Leaders:
        """This node's replicas (of `cores`; None: every core). A core that is down is left out."""
        out: Leaders = {}
        if self.router is None:
            return out
        for core in sorted(set(range(self.router.ncores) if cores is None else cores)):
            # That core down or restarting (dead actor, died core, a ring that failed): its
            # replicas are left out, as the controller service always did.
            with contextlib.suppress(Exception):
                out.update(await resolve(self.router.ref(core, MANAGER).ask(
                    ReplicaLeaders(), block=False)))
        return out

    async def _serve(self, payload: memoryview) -> bytes:
        del payload
        led = {n: [v[0], v[1], list(v[2])] for n, v in (await self.local()).items()
               if v[0] == self.me}
        return json.dumps(led, separators=(",", ":")).encode()

    async def remote(self, nodes: Mapping[NodeId, tuple[str, int]]) -> Leaders:
        """What each of `nodes` (node id -> its core 0's RPC address) says it leads, fresh
        within `ttl_s`; a node asked already is not asked twice at once."""
        now = time.monotonic()
        out: Leaders = {}
        waits: list[asyncio.Task[Leaders | None]] = []
        for node, addr in nodes.items():
            cached = self._cache.get(node)
            if cached is not None and now - cached[0] < self.ttl_s:
                out.update(cached[1])
                continue
            task = self._asking.get(node)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._ask(node, addr))
                self._asking[node] = task
                task.add_done_callback(functools.partial(self._asked, node))
            waits.append(task)
        for task in waits:
            try:
                got = await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():  # the caller was cancelled, not the shared call
                    raise
                continue
            if got is not None:
                out.update(got)
        return out

    async def ask_any(self, addrs: Sequence[tuple[str, int]], method: int, payload: bytes, *,
                      timeout: float | None = None, idempotent: bool = True) -> bytes | None:
        """The answer of the first of `addrs` (core 0 RPC addresses) that gives one within
        `timeout` (default `timeout_s`; an empty payload is no answer: that node cannot say
        either). Not `idempotent` (a proposal): after a timeout the call may still run there,
        so no other node is asked."""
        for i in range(len(addrs)):
            k = (self._first + i) % len(addrs)
            try:
                raw = await self._client(addrs[k]).call(
                    method, payload, timeout=self.timeout_s if timeout is None else timeout)
            except RpcTimeout as exc:
                _log.info("peer_call_timed_out", method=method, peer=f"{addrs[k]}",
                          error=str(exc))
                if not idempotent:
                    return None
                continue
            except RpcError as exc:
                _log.debug("peer_call_failed", method=method, peer=f"{addrs[k]}", error=str(exc))
                continue
            if raw:
                self._first = k
                return bytes(raw)
        return None

    def _client(self, addr: tuple[str, int]) -> RpcClient:
        client = self._clients.get(addr)
        if client is None:
            client = self._clients[addr] = RpcClient(addr[0], addr[1],
                                                     default_timeout_s=self.timeout_s)
        return client

    def _asked(self, node: NodeId, task: asyncio.Task[Leaders | None]) -> None:
        if self._asking.get(node) is task:
            del self._asking[node]

    async def _ask(self, node: NodeId, addr: tuple[str, int]) -> Leaders | None:
        try:
            raw = await self._client(addr).call(LEADERS_METHOD, b"", timeout=self.timeout_s)
            decoded = json.loads(bytes(raw))
            got: Leaders = {str(name): (int(v[0]), int(v[1]), tuple(int(x) for x in v[2]))
                            for name, v in decoded.items()}
        except (RpcError, ValueError, TypeError, KeyError, IndexError) as exc:
            _log.debug("leader_view_unavailable", node=int(node), error=str(exc))
            # Not asked again within `ttl_s`: a paused node costs Metadata one timeout per ttl.
            self._cache[node] = (time.monotonic(), {})
            return None
        self._cache[node] = (time.monotonic(), got)
        return got


async def _pong(payload: memoryview) -> bytes:
    del payload
    return b""
