"""The transform manager of a core: runs the instances of the deployed transforms whose input
partitions this core leads.

Concern: following the deployments (the compacted topic `__transforms`, `transform_spec`:
read from its leader every `FOLLOW_S`, or at once when told `Refresh`: by an instance, or by
another core's manager that read a change, so a deployment starts on every core together),
loading each deployment's class from its shipped source (one module per deployment), and
reconciling: one `TransformInstance`
per (deployment, input partition led by this core), registered under
`instance_name` (so it shows up in `redshank actors`); stopped when the deployment is deleted
or replaced, or the partition is no longer led here; started when a partition's leader
announces itself on this core (`LeaderChanged`, told by the partition manager's leadership
hook) or a deployment appears.

Which partitions this core leads: single node, the topic's shard table (`TopicInfo.core_of`,
the one replica is the leader once it serves). Cluster mode (a controller topic,
`TopicInfo.replicated`): the partitions whose replica on this core (`core_of`) is its Raft
leader and serves, as that replica says (`ReplicaStatus`). Leadership moves are heard from the
partition itself: a replica that starts to serve announces it through the partition manager's
leadership hook (`_announce_leader` -> `LeaderChanged` to this manager: the instance starts
at once); a replica that loses it answers the instance's next read NOT_LEADER_OR_FOLLOWER (the
instance stops reading and asks for a `Refresh`: it is stopped here). The reconcile every
`FOLLOW_S` catches whatever a hook missed (a core restarted meanwhile).

Cluster mode, the deployments: `__transforms` is an ordinary controller topic (created by the
CLI with the cluster's default replication factor), so it is replicated like any topic and
survives the loss of a node; a core reads it from its replica on this node when that replica
leads, else from its leader over Kafka's wire (`transform_client`).

Lives on every core; created by `setup_core` after the core's `CoreServices`, ends with the
core. Must not know: what an instance does with its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pykka
import structlog

from redshank.actors._async import resolve
from redshank.actors.embed.transform import (
    Transform,
    TransformLoadError,
    load_transform,
    records_of,
)
from redshank.actors.frontend.services import CoreServices
from redshank.actors.partition_leader import ReplicaStatus, partition_name
from redshank.actors.runtime import CoreDiedError, LoopActor
from redshank.actors.topic_cache import LeaderChanged
from redshank.actors.transform_client import WireClient
from redshank.actors.transform_instance import (
    Describe,
    Refresh,
    TransformInstance,
    instance_name,
)
from redshank.actors.transform_spec import TRANSFORMS_TOPIC, Deployment
from redshank.cluster.kafka import TopicInfo, TopicPartition
from redshank.cluster.partition.api import Read
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches

__all__ = ["TRANSFORMS", "Refresh", "TransformManager"]

TRANSFORMS = "transforms"
FOLLOW_S = 1.0
_READ_BYTES = 4 * 1024 * 1024
_log = structlog.get_logger("redshank.transforms")


class TransformManager(LoopActor):
    """One per core (see the module docstring)."""

    def __init__(self, core: CoreServices) -> None:
        super().__init__()
        self.core = core
        self.deployments: dict[str, Deployment] = {}
        self.offset = 0  # the next offset of `__transforms` to read
        self.classes: dict[str, tuple[Deployment, type[Transform] | None, str | None]] = {}
        # (deployment name, partition) -> (the deployment it runs, its actor)
        self.running: dict[tuple[str, int], tuple[Deployment, pykka.ActorRef[Any]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Cluster mode: what the core's own paths cannot reach (created on first use).
        self._wire: WireClient | None = None

    def on_start(self) -> None:
        self._task = self.core.loop.create_task(self._follow())

    def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for key in list(self.running):
            self._stop_instance(key)
        if self._wire is not None:
            self.core.loop.create_task(self._wire.close())

    @property
    def wire(self) -> WireClient | None:
        """The wire client of a cluster-mode node (None on a single node)."""
        if self._wire is None and self.core.cluster_mode:
            self._wire = WireClient((self.core.config.host, self.core.config.port))
        return self._wire

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LeaderChanged | Refresh):
            self._wake.set()
            return True
        if isinstance(message, Describe):
            return sorted(self.running)
        raise TypeError(f"transform manager got {type(message).__name__}")

    @property
    def actor_status(self) -> str:
        return f"{len(self.deployments)} deployed, {len(self.running)} instances here"

    async def _follow(self) -> None:
        while True:
            try:
                if await self._read():
                    self._tell_peers()
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # never the core's death; tried again next round
                _log.exception("transforms_follow_failed", core=self.core.ctx.core)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FOLLOW_S)
            self._wake.clear()

    def _tell_peers(self) -> None:
        """This core read a change of the deployments: the other cores' managers read too, now
        rather than at their next round (each core's round has its own phase: a deployment's
        instances on two cores started up to a round apart, 0.5 s measured, and a drain then
        waited for the late core's half)."""
        me = self.core.ctx.core
        for core in range(self.core.router.ncores):
            if core != me:
                with contextlib.suppress(pykka.ActorDeadError, CoreDiedError):
                    self.core.router.ref(core, TRANSFORMS).tell(Refresh())

    async def _read(self) -> bool:
        """Apply the records of `__transforms` after `self.offset`; -> whether there were."""
        infos, _unsure = await self.core.topic_infos([TRANSFORMS_TOPIC])
        info = infos.get(TRANSFORMS_TOPIC)
        if info is None:
            return False
        start_offset = self.offset
        owner = info.core_of(0)
        tp = TopicPartition(TRANSFORMS_TOPIC, 0)
        while True:
            code: int = ErrorCode.NOT_LEADER_OR_FOLLOWER
            start, data = -1, b""
            if owner is not None and owner >= 0:
                res = await self.core.ask_partition(
                    tp, owner, Read(self.offset, _READ_BYTES, -1, owner != self.core.ctx.core))
                code, start = res.error_code, res.log_start_offset
                data = bytes(res.records) if res.records else b""
            wire = self.wire if info.replicated else None
            if code == ErrorCode.NOT_LEADER_OR_FOLLOWER and wire is not None:
                # Led by another node: read it there (committed records only, as here).
                code, start, data = await wire.fetch(TRANSFORMS_TOPIC, 0, self.offset,
                                                     _READ_BYTES)
            if code == ErrorCode.OFFSET_OUT_OF_RANGE and self.offset < start:
                self.offset = start
                continue
            if code != ErrorCode.NONE or not data:
                return self.offset > start_offset
            for record in records_of(TRANSFORMS_TOPIC, 0, data, self.offset):
                self._apply(record.key, record.value)
            for _pos, header in iter_batches(data, verify_crc=False):
                self.offset = max(self.offset, header.last_offset + 1)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode(errors="replace")
        if value is None:
            self.deployments.pop(name, None)
            return
        try:
            self.deployments[name] = Deployment.decode(value)
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("transform_record_unreadable", transform=name, error=repr(exc))

    async def _reconcile(self) -> None:
        inputs = sorted({d.input for d in self.deployments.values()})
        infos, _unsure = await self.core.topic_infos(inputs) if inputs else ({}, frozenset())
        wanted: dict[tuple[str, int], Deployment] = {}
        leading: dict[str, set[int]] = {}
        for dep in self.deployments.values():
            info = infos.get(dep.input)
            if info is None:
                continue
            if dep.input not in leading:
                leading[dep.input] = await self._leading(info)
            for p in leading[dep.input]:
                wanted[(dep.name, p)] = dep
        for key, (dep, _ref) in list(self.running.items()):
            if wanted.get(key) != dep:
                self._stop_instance(key)
        for key, dep in wanted.items():
            if key not in self.running:
                self._start_instance(dep, key[1])

    async def _leading(self, info: TopicInfo) -> set[int]:
        """The partitions of `info` this core leads: single node, those it owns; cluster mode,
        those whose replica here is the serving Raft leader (as the replica says)."""
        me = self.core.ctx.core
        mine = {p for p in range(info.partitions) if info.core_of(p) == me}
        if not info.replicated:
            return mine
        out = set()
        for p in mine:
            name = partition_name(info.name, p)
            with contextlib.suppress(pykka.ActorDeadError, CoreDiedError):
                status = await resolve(self.core.router.ref(me, name).ask(
                    ReplicaStatus(), block=False))
                if status["role"] == "leader" and status["serves"]:
                    out.add(p)
        return out

    def _class(self, dep: Deployment) -> tuple[type[Transform] | None, str | None]:
        known = self.classes.get(dep.name)
        if known is not None and known[0] == dep:
            return known[1], known[2]
        cls: type[Transform] | None = None
        error: str | None = None
        try:
            cls = load_transform(dep.name, dep.source, dep.filename, dep.cls)
        except TransformLoadError as exc:
            error = str(exc)
        self.classes[dep.name] = (dep, cls, error)
        return cls, error

    def _start_instance(self, dep: Deployment, partition: int) -> None:
        cls, error = self._class(dep)
        ref = TransformInstance.start(self.core, dep, cls, partition, error, self.wire,
                                      self.actor_ref)
        self.core.router.register(instance_name(dep.name, partition), ref)
        self.running[(dep.name, partition)] = (dep, ref)
        _log.info("transform_instance_started", transform=dep.name, partition=partition,
                  core=self.core.ctx.core)

    def _stop_instance(self, key: tuple[str, int]) -> None:
        _dep, ref = self.running.pop(key)
        self.core.router.unregister(instance_name(*key))
        with contextlib.suppress(pykka.ActorDeadError, CoreDiedError):
            ref.stop(block=False)
        _log.info("transform_instance_stopped", transform=key[0], partition=key[1],
                  core=self.core.ctx.core)
