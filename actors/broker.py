"""One core of a broker node: its actors and its Kafka listener.

Concern: `setup_core`, the runtime's per-core setup: the disk writer, the partition manager, the
topic cache and watermark watch, the topic controller on core 0, the core's RPC listener when the
node has an RPC address (`node_rpc`) and, on core 0 of a node with seeds, its replica of the
controller (`controller_service`), the core's `CoreServices` (the request paths of
`actors/frontend`), and a `SO_REUSEPORT` listener on the Kafka port whose
connections each get a kafka-session; and `BrokerConfig`, what a node is started with. Must not
know: any request path (`actors/frontend`), the bytes of a connection (`kafka_session`),
storage internals.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import pykka
import structlog

from redshank.actors.controller_service import start_controller_service
from redshank.actors.disk_writer import DiskWriter, OpenKv
from redshank.actors.frontend import CoreServices
from redshank.actors.frontend.fetch import MAX_REMOTE_READ
from redshank.actors.frontend.transactions import CoreTxnIO
from redshank.actors.kafka_session import KafkaSession
from redshank.actors.node_rpc import NodeRpcConfig, NodeRpcHandle, start_node_rpc
from redshank.actors.partition_manager import (
    MANAGER,
    RETENTION_CHECK_S,
    AttachMessenger,
    AttachTxnIO,
    PartitionManager,
    Routes,
)
from redshank.actors.raft_messenger import RaftMessenger
from redshank.actors.runtime import CoreContext
from redshank.actors.topic_cache import TOPIC_CACHE, TopicCache
from redshank.actors.topic_controller import CONTROLLER, TopicController
from redshank.actors.transform_manager import TRANSFORMS, TransformManager
from redshank.actors.watermarks import WATERMARKS, Watermarks, WatermarkWatch
from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.group import GroupConfig
from redshank.cluster.kafka import LeadersTable, TopicInfo
from redshank.cluster.raft.types import NodeId
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage import BatchCache, FlushCoordinator

__all__ = ["REQUEST_MEMORY_BYTES", "RING_BYTES", "BrokerConfig", "setup_core"]

_log = structlog.get_logger("redshank.broker")
# Shared-memory ring per core pair: a frame holds at most half of it, so a record batch of
# max.message.bytes (1 MiB by default) and a cross-core read (MAX_REMOTE_READ) both fit with
# room to spare.
RING_BYTES = 8 * 1024 * 1024
REQUEST_MEMORY_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str
    port: int
    advertised_host: str
    advertised_port: int
    data_dir: str
    node_id: int = 0
    auto_create_topics: bool = True
    default_partitions: int = 1
    # Kafka's default.replication.factor for auto-created topics and CreateTopics asking -1;
    # None: 1 on a single node, the cluster's rule in cluster mode (3 once 3 nodes are active).
    default_replication_factor: int | None = None
    # The Kafka names of the broker configs a start flag set (DescribeConfigs shows them as
    # STATIC_BROKER_CONFIG even when equal to Kafka's default).
    explicit_configs: frozenset[str] = frozenset()
    batch_cache_bytes: int = 64 * 1024 * 1024
    # A lone consumer should get its first records within a second or two (issue 5), so the
    # first rebalance of an empty group waits less than Kafka's 3 s.
    initial_rebalance_delay_ms: int = 500
    # Produce bytes in flight per core before sessions stop reading (replicate-batcher memory).
    produce_memory_bytes: int = 64 * 1024 * 1024
    # Bytes of not-yet-decoded requests the connections of a core may hold (a flood of large
    # or slow frames stays within it).
    request_memory_bytes: int = REQUEST_MEMORY_BYTES
    # How often each core applies retention.ms / retention.bytes to its logs.
    retention_check_s: float = RETENTION_CHECK_S
    # The most one fetch returns of one partition, whatever max.partition.fetch.bytes allows:
    # a consumer asking 10 MiB per partition got 44 MB responses and ~240k msg/s over 8
    # partitions, against 510-700k with responses of 1 MiB per partition (confluent-kafka,
    # this 2-core machine); the client pipelines the smaller ones.
    fetch_partition_max_bytes: int = MAX_REMOTE_READ
    # Incremental fetch sessions (KIP-227) each core keeps (Kafka's
    # max.incremental.fetch.session.cache.slots, per core).
    fetch_session_slots: int = 1000
    # How long a topic lookup waits for the controller (core 0) before this core answers from
    # its topic cache: far below clients' request timeouts (30-60 s), far above a lookup's
    # usual time (well under a millisecond; an auto-create waits for one fdatasync).
    controller_timeout_s: float = 5.0
    # Topics one Metadata request may auto-create; the request's other new names are
    # UNKNOWN_TOPIC_OR_PARTITION this time and created by a later request (clients ask again).
    auto_create_topics_per_request: int = 100
    # Kafka's connections.max.idle.ms: a connection with nothing in flight and no traffic for
    # this long is closed (0: never).
    connections_max_idle_ms: int = 600_000
    # Internal RPC (`--rpc-addr`): None for a node started without one (no listener, no peers).
    rpc: NodeRpcConfig | None = None



def _listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _start_messenger(rpc: NodeRpcConfig, ctx: CoreContext, handle: NodeRpcHandle,
                     manager: pykka.ActorRef[Any], routes: Routes) -> None:
    """Cluster mode: the core's Raft messenger for the replicas the controller backend opens
    here; it finds a peer's replica through `routes` (filled by the partition manager)."""
    node = NodeId(rpc.identity.node_id)
    messenger = RaftMessenger(node, ctx.loop, handle.server,
                              lambda group, dst: routes.get(group, {}).get(dst))
    handle.closers.insert(0, messenger.close)
    manager.tell(AttachMessenger(messenger, node))


async def setup_core(config: BrokerConfig, ctx: CoreContext) -> None:
    """The runtime's per-core setup (`functools.partial(setup_core, config)`)."""
    loop = ctx.loop
    coordinator = FlushCoordinator()
    writer = DiskWriter.start(coordinator, BatchCache(config.batch_cache_bytes), ctx.fatal)
    ctx.router.register("disk-writer", writer)
    groups = GroupConfig(initial_rebalance_delay_ms=config.initial_rebalance_delay_ms)
    routes: Routes = {}
    manager = PartitionManager.start(ctx.router, config.data_dir, coordinator, writer, loop,
                                     groups, config.retention_check_s, routes)
    ctx.router.register(MANAGER, manager)
    topics: dict[str, TopicInfo] = {}
    leaders = LeadersTable()
    ctx.router.register(TOPIC_CACHE, TopicCache.start(topics, leaders))
    watermarks = Watermarks()
    ctx.router.register(WATERMARKS, WatermarkWatch.start(watermarks))
    if ctx.core == 0:
        kv = await writer.ask(OpenKv(os.path.join(config.data_dir, "meta")), block=False)
        controller = TopicController.start(ctx.router, kv, coordinator, writer, loop)
        ctx.router.register(CONTROLLER, controller)
    if config.rpc is not None:
        kafka = NetAddress(config.advertised_host, config.advertised_port)
        handle = await start_node_rpc(config.rpc, ctx, kafka, config.data_dir)
        if config.rpc.identity.seeds:
            _start_messenger(config.rpc, ctx, handle, manager, routes)
        if ctx.core == 0 and config.rpc.identity.seeds:
            start_controller_service(config.rpc, ctx, handle, config.data_dir)
    core = CoreServices(config, ctx, topics, watermarks, leaders)
    core.cluster_mode = config.rpc is not None and bool(config.rpc.identity.seeds)
    ctx.router.register(TRANSFORMS, TransformManager.start(core))  # data transforms
    # The core's transaction hosts write markers and get producer ids through its frontends.
    manager.tell(AttachTxnIO(CoreTxnIO(core)))
    sock = _listen_socket(config.host, config.port)
    idle_s = config.connections_max_idle_ms / 1000 or None
    await loop.create_server(lambda: KafkaSession(core, idle_s=idle_s), sock=sock)
    _log.info("kafka_listening", host=config.host, port=config.port)
    # Fill the topic cache now (a restarted core has none), so that it can answer for the
    # node's topics should core 0 restart later; at a node's start core 0 may not be up yet,
    # and then the cache fills as requests look topics up.
    core.seeding = loop.create_task(core.lookup(None))
