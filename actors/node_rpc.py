"""A node's internal RPC endpoint on each core, and the HELLO that tells nodes of each other.

Concern: when the node is started with `--rpc-addr`, every core listens at `rpc_port(base, core)`
(`RpcServer.for_core`) and answers HELLO with this node's `Hello` (`cluster/node_hello.py`).
Core 0 also greets each seed (its core 0: base port + 0) in the background with a deadline and
bounded, jittered retries, keeps what it learns of peers (seeds that answered, nodes that greeted
it) and writes that view to `<data>/cluster/peers.json` for tools and tests (a restarted core 0
starts the view afresh and greets the seeds again; the file is small and written without fsync,
on the loop: it is rebuilt at every start). A seed that answers
with our node id but another incarnation (`duplicate_node_id`), or another cluster
(`cluster_mismatch`), stops the whole node: core 0 writes `<data>/cluster/refused.json` with a
one-line reason and sends SIGTERM to the supervisor, which stops every core (a core exiting on
its own would only be restarted); `redshank start` then prints the reason and exits 1.

Handlers for other methods (the controller's) are registered on the core's server by their hosts
(`start_node_rpc` returns a `NodeRpcHandle`: the server, what HELLO learned of the seeds, and
the closers its hosts add, each run before the server stops); method ids below 100 are this
module's. Once the node belongs to a cluster, `ClusterAssigned` (told to every core) puts its
uuid in the HELLO each core answers. Must not know: Raft, the controller's commands, partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import random
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import field, replace
from typing import Any

import structlog

from redshank.actors.node_identity_store import load_identity
from redshank.actors.rpc import Backoff, RpcClient, RpcError, RpcServer
from redshank.actors.runtime import CoreContext, LoopActor
from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.node_hello import (
    Hello,
    PeerVerdict,
    check_peer,
    decode_hello,
    encode_hello,
    refusal_message,
)
from redshank.cluster.node_identity import NodeIdentity
from redshank.cluster.node_join import VIEW_FILE
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["NODE_RPC", "PEERS_FILE", "REFUSAL_FILE", "ClusterAssigned", "NodeMethod", "NodeRpc",
           "NodeRpcConfig", "NodeRpcHandle", "SeedAnswers", "clear_node_files", "read_refusal",
           "start_node_rpc"]

NODE_RPC = "node-rpc"
PEERS_FILE = "cluster/peers.json"
REFUSAL_FILE = "cluster/refused.json"

_log = structlog.get_logger("redshank.node_rpc")


class NodeMethod(enum.IntEnum):
    """RPC method ids of node-level calls (ids 1-99; other hosts take their own range)."""

    HELLO = 1


@dataclass(frozen=True, slots=True)
class NodeRpcConfig:
    listen: NetAddress  # core c listens on listen.port + c
    advertised: NetAddress  # what peers are told (its port is core 0's)
    identity: NodeIdentity
    supervisor_pid: int  # signalled when this node must not run (a refusal)
    hello_timeout_s: float = 2.0
    # ~0.1 s doubling to a 2 s cap, plus each attempt's timeout: a seed that starts up to about
    # 40 s later is still reached (it greets us too if we are among its seeds).
    hello_attempts: int = 30


@dataclass(frozen=True, slots=True)
class ClusterAssigned:
    """Told to each core's `NodeRpc`: the node now belongs to this cluster (HELLO says so)."""

    cluster_uuid: uuid.UUID


class SeedAnswers:
    """What HELLO learned of each seed on core 0 (this node's own answer included, when it is
    a seed): filled by `NodeRpc`, read on the same loop by whoever waits for every seed."""

    def __init__(self, seeds: tuple[NetAddress, ...]) -> None:
        self.seeds = seeds
        self.answers: dict[NetAddress, Hello] = {}
        self._waiters: list[asyncio.Future[None]] = []

    def answered(self, seed: NetAddress, hello: Hello) -> None:
        self.answers[seed] = hello
        if self.complete:
            for fut in self._waiters:
                if not fut.done():
                    fut.set_result(None)
            self._waiters = []

    @property
    def complete(self) -> bool:
        return all(s in self.answers for s in self.seeds)

    async def wait_all(self) -> dict[NetAddress, Hello]:
        """Until every seed answered (forever if one never does: the caller bounds it)."""
        if not self.complete:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut
        return dict(self.answers)


@dataclass(slots=True)
class NodeRpcHandle:
    """What a core's setup gets back from `start_node_rpc`."""

    server: RpcServer
    me: Hello
    seeds: SeedAnswers  # filled on core 0 only
    # Run in order when the core stops, before its server stops (a host on the server closes).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def read_refusal(data_dir: str) -> str | None:
    """The reason core 0 gave for stopping this node, if it did (`redshank start` reads it)."""
    try:
        with open(os.path.join(data_dir, REFUSAL_FILE)) as f:
            return str(json.load(f)["reason"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def clear_node_files(data_dir: str) -> None:
    """Forget the last run's views (peers, refusal, controller); called before a node starts."""
    for name in (PEERS_FILE, REFUSAL_FILE, VIEW_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(data_dir, name))


async def start_node_rpc(config: NodeRpcConfig, ctx: CoreContext, kafka_addr: NetAddress,
                         data_dir: str) -> NodeRpcHandle:
    """Listen on this core's RPC port, answer HELLO, and on core 0 greet the seeds; returns the
    core's server (other hosts register their methods on it) with the seeds' answers. Raises
    OSError when the port cannot be bound (the core's setup fails)."""
    # The identity as stored now: a core restarted after the node joined a cluster says so.
    stored = await asyncio.get_running_loop().run_in_executor(None, load_identity, data_dir)
    cluster = config.identity.cluster_uuid if stored is None else stored.cluster_uuid
    me = Hello(config.identity.node_id, config.identity.incarnation, cluster, ctx.ncores,
               kafka_addr, config.advertised)
    server = RpcServer.for_core(config.listen.host, config.listen.port, ctx.core)
    await server.start()
    handle = NodeRpcHandle(server, me, SeedAnswers(config.identity.seeds))
    # No await from here to the registration: no request is read before HELLO has its handler.
    ctx.router.register(NODE_RPC, NodeRpc.start(config, ctx.core, handle, data_dir))
    _log.info("rpc_listening", core=ctx.core, host=config.listen.host, port=server.address[1])
    return handle


class NodeRpc(LoopActor):
    """One per core, on its loop: started by the core's setup when the node has an RPC address,
    once its server listens; stopped with the core (`on_stop` stops the server and the
    greetings). On core 0 it also greets the seeds and keeps the peer view."""

    def __init__(self, config: NodeRpcConfig, core: int, handle: NodeRpcHandle,
                 data_dir: str) -> None:
        super().__init__()
        self.config = config
        self.core = core
        self.handle = handle
        self.server = handle.server
        self.me = handle.me
        self.data_dir = data_dir
        self.peers: dict[int, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        # The core's shutdown waits for it (bounded): hosts' closers, then the server's stop.
        self.actor_closing: asyncio.Task[None] | None = None
        self.log = _log.bind(core=core, node_id=self.me.node_id)
        self.server.register(NodeMethod.HELLO, self.on_hello)

    def on_start(self) -> None:
        if self.core == 0:
            self.write_peers()
            self.greet_seeds()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ClusterAssigned):
            if self.me.cluster_uuid != message.cluster_uuid:
                self.me = replace(self.me, cluster_uuid=message.cluster_uuid)
                self.log.info("hello_cluster_set", cluster=str(message.cluster_uuid))
            return None
        raise TypeError(f"unexpected message {type(message).__name__}")

    # -- HELLO, answered on every core ----------------------------------------------------------
    def on_hello(self, payload: memoryview) -> bytes:
        caller = decode_hello(payload)
        verdict = check_peer(self.me, caller)
        if verdict is PeerVerdict.DUPLICATE_NODE_ID:
            # The caller sees the same verdict and stops; we keep serving.
            self.log.warning("hello_from_duplicate_node_id", peer_uuid=str(caller.incarnation),
                             rpc=str(caller.rpc_addr))
        elif verdict is PeerVerdict.PEER and self.core == 0:
            self.saw(caller, f"greeted us from {caller.rpc_addr}")
        return encode_hello(self.me)

    # -- greeting the seeds (core 0) ------------------------------------------------------------
    def greet_seeds(self) -> None:
        for seed in self.config.identity.seeds:
            task = asyncio.get_running_loop().create_task(self._greet(seed))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _greet(self, seed: NetAddress) -> None:
        backoff = Backoff(base_s=0.1, cap_s=2.0, rng=random.Random())
        error = ""
        for _attempt in range(self.config.hello_attempts):
            payload = encode_hello(self.me)
            timeout = self.config.hello_timeout_s
            try:
                async with RpcClient(seed.host, seed.port, default_timeout_s=timeout,
                                     connect_timeout_s=timeout) as client:
                    answer = decode_hello(await client.call(NodeMethod.HELLO, payload))
            except (RpcError, OSError) as exc:
                error = str(exc)
                await asyncio.sleep(backoff.failed())
                continue
            self._answered(seed, answer)
            return
        self.log.warning("seed_unreachable", seed=str(seed), attempts=self.config.hello_attempts,
                         error=error)

    def _answered(self, seed: NetAddress, peer: Hello) -> None:
        verdict = check_peer(self.me, peer)
        if verdict is PeerVerdict.SELF:
            self.log.info("seed_is_self", seed=str(seed))
            self.handle.seeds.answered(seed, peer)
        elif verdict is PeerVerdict.PEER:
            self.saw(peer, f"seed {seed}")
            self.handle.seeds.answered(seed, peer)
        else:
            self.refuse(verdict, peer, seed)

    def saw(self, peer: Hello, via: str) -> None:
        known = self.peers.get(peer.node_id)
        if known is not None and known["node_uuid"] != str(peer.incarnation):
            # Two incarnations under one id: the one seen first stays (the newcomer is told it
            # is a duplicate by the node it greeted, and stops). Which one the cluster keeps
            # is the controller's call once it registers nodes.
            self.log.warning("peer_id_conflict", peer=peer.node_id, kept=known["node_uuid"],
                             other=str(peer.incarnation), via=via)
            return
        if known is None:
            self.log.info("peer_seen", peer=peer.node_id, peer_uuid=str(peer.incarnation),
                          via=via, kafka=str(peer.kafka_addr), rpc=str(peer.rpc_addr))
        self.peers[peer.node_id] = {
            "node_id": peer.node_id, "node_uuid": str(peer.incarnation),
            "cluster_uuid": "" if peer.cluster_uuid is None else str(peer.cluster_uuid),
            "cores": peer.cores, "kafka": str(peer.kafka_addr), "rpc": str(peer.rpc_addr),
            "via": via, "seen_at": time.time(),
        }
        self.write_peers()

    def refuse(self, verdict: PeerVerdict, peer: Hello, seed: NetAddress) -> None:
        reason = refusal_message(verdict, self.me, peer, seed)
        self.log.error(verdict.name.lower(), seed=str(seed), peer=peer.node_id,
                       peer_uuid=str(peer.incarnation), reason=reason)
        self._write_json(REFUSAL_FILE, {"verdict": verdict.name.lower(), "reason": reason})
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.config.supervisor_pid, signal.SIGTERM)

    def write_peers(self) -> None:
        self._write_json(PEERS_FILE, {
            "node_id": self.me.node_id, "node_uuid": str(self.me.incarnation),
            "seeds": [str(s) for s in self.config.identity.seeds],
            "peers": [self.peers[k] for k in sorted(self.peers)],
        })

    def _write_json(self, name: str, record: dict[str, Any]) -> None:
        # A view rebuilt at every start: atomic (rename), not durable (no fsync).
        path = os.path.join(self.data_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)

    # -- lifecycle ------------------------------------------------------------------------------
    def on_stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        # The core's shutdown goes on stopping its other actors (and its disk writer's last
        # flush) meanwhile: the listener closes within a loop turn, idle connections soon after.
        self.actor_closing = asyncio.get_running_loop().create_task(self._stop_server())

    async def _stop_server(self) -> None:
        for close in self.handle.closers:
            try:
                await close()
            except Exception as exc:  # a host's close failing must not keep the port open
                self.log.error("rpc_closer_failed", error=repr(exc))
        await self.server.stop()
        self.log.info("rpc_stopped")
