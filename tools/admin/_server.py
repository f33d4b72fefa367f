"""The admin HTTP API of a node (Redpanda's port 9644): aiohttp on its own thread and loop.

Concern: serving the node's status and figures over HTTP from the supervisor process, never
from a core: a daemon thread runs an asyncio loop with an aiohttp app on a socket the caller
already bound (so a port in use fails at start, before any core). Every answer is read at
request time from what the node already publishes (control block through `ready`, the stats
blocks, `cluster/controller.json`); nothing here is on a core's path. Must not know how cores
produce their numbers.

    GET /v1/status/ready     200 when every core is ready, else 503
    GET /v1/node             node id, version, uptime, cores, Kafka and RPC addresses
    GET /v1/cluster/health   single node: healthy and the node; cluster: the controller's view
    GET /v1/partitions       every partition hosted here: offsets, high watermark, bytes, Raft
    GET /v1/actors           exactly what `redshank actors --json` prints
    GET /metrics             Prometheus text format (`_metrics.NodeCollector`)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import field
from importlib import metadata
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from redshank.actors.runtime import NodeNotRunningError, read_core_blocks, read_node_stats
from redshank.cluster.node_join import VIEW_FILE
from redshank.protocol.fast_dataclass import dataclass

from ._metrics import NodeCollector, partition_rows

__all__ = ["AdminConfig", "AdminServer", "bind_admin_socket"]

STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """What the admin API tells about its node; `ready` answers "every core ready?" and must be
    safe to call from another thread (a read of the control block)."""

    node_id: int
    data_dir: str
    cores: int
    kafka: str  # advertised HOST:PORT
    rpc: str | None  # advertised RPC HOST:PORT; None: a single node
    ready: Callable[[], bool]
    started: float = field(default_factory=time.time)


def bind_admin_socket(host: str, port: int) -> socket.socket:
    """A listening socket on HOST:PORT (port 0: any free one); OSError if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a predecessor
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _version() -> str:
    try:
        return metadata.version("redshank")
    except metadata.PackageNotFoundError:
        return "unknown"


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(doc), status=status, content_type="application/json")


class _Handlers:
    def __init__(self, config: AdminConfig) -> None:
        self.config = config
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(config.data_dir, config.cores))

    async def ready(self, _: web.Request) -> web.Response:
        ready = self.config.ready()
        return _json({"status": "ready" if ready else "booting"}, 200 if ready else 503)

    async def node(self, _: web.Request) -> web.Response:
        c = self.config
        return _json({"node_id": c.node_id, "version": _version(),
                      "uptime_s": round(time.time() - c.started, 3), "cores": c.cores,
                      "kafka": c.kafka, "rpc": c.rpc, "data_dir": c.data_dir,
                      "pid": os.getpid()})

    async def health(self, _: web.Request) -> web.Response:
        c = self.config
        ready = c.ready()
        if c.rpc is None:
            return _json({"is_healthy": ready, "mode": "single", "node_id": c.node_id,
                          "controller_id": c.node_id, "all_nodes": [c.node_id],
                          "nodes_down": [] if ready else [c.node_id]})
        view = _controller_view(c.data_dir)
        leader = None if view is None else view.get("leader")
        members = [] if view is None else view.get("members", [])
        return _json({"is_healthy": ready and leader is not None, "mode": "cluster",
                      "node_id": c.node_id, "controller_id": leader,
                      "all_nodes": sorted(m["node_id"] for m in members),
                      "nodes_down": [] if ready else [c.node_id],
                      # This node's knowledge only: None when it keeps no controller replica.
                      "controller": view})

    async def partitions(self, _: web.Request) -> web.Response:
        blocks = read_core_blocks(self.config.data_dir, self.config.cores)
        node = self.config.node_id
        return _json({"node_id": node, "partitions": partition_rows(blocks, node)})

    async def actors(self, _: web.Request) -> web.Response:
        try:
            return _json(read_node_stats(self.config.data_dir))
        except NodeNotRunningError as exc:
            return _json({"error": str(exc)}, 503)

    async def metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _controller_view(data_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(data_dir, VIEW_FILE)) as f:
            view: dict[str, Any] = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return view


def _app(config: AdminConfig) -> web.Application:
    h = _Handlers(config)
    app = web.Application()
    app.add_routes([web.get("/v1/status/ready", h.ready), web.get("/v1/node", h.node),
                    web.get("/v1/cluster/health", h.health),
                    web.get("/v1/partitions", h.partitions), web.get("/v1/actors", h.actors),
                    web.get("/metrics", h.metrics)])
    return app


class AdminServer:
    """The admin API on `sock` (from `bind_admin_socket`), served by a daemon thread of the
    supervisor process from `start()` until `stop()`."""

    def __init__(self, config: AdminConfig, sock: socket.socket) -> None:
        self.config = config
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="redshank-admin", daemon=True)
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None

    def start(self) -> None:
        self._thread.start()
        self._started.wait(STOP_TIMEOUT_S)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._open())
        finally:
            self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._close())
        self._loop.close()

    async def _open(self) -> None:
        self._runner = web.AppRunner(_app(self.config), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock).start()

    async def _close(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            self.sock.close()
