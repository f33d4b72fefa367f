"""The partition manager of a core: opens the partitions this core owns and starts their leaders.

Concern: `Ensure(topic, partition)` -> the log is open (on the disk writer), a partition-leader
actor runs and is registered under `partition_name(topic, partition)`. Idempotent, and
concurrent ensures of one partition share one open. Must not know: Kafka requests, sessions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import os
import shutil
import time
import uuid
from typing import Any

import pykka
import structlog

from redshank.actors._async import resolve, spawn
from redshank.actors.disk_writer import Blocking, OpenedPartition, OpenPartition
from redshank.actors.group_host import GROUPS_TOPIC, GroupHost, group_host_name, read_group_records
from redshank.actors.partition_host import Replicas
from redshank.actors.partition_leader import (
    RECOVER_MAX_S,
    RECOVER_MIN_S,
    PartitionLeader,
    Ready,
    ReplicaStatus,
    SetPreferred,
    partition_name,
)
from redshank.actors.partition_probe import PUBLISH_EVERY_S, publish_partitions
from redshank.actors.raft_messenger import Address, RaftMessenger
from redshank.actors.runtime import (
    CoreDiedError,
    CoreRouter,
    LoopActor,
    LoopFuture,
    has_stats_block,
)
from redshank.actors.startup_recovery import StartupRecovery, owned_partition_dirs
from redshank.actors.topic_cache import TOPIC_CACHE, LeaderChanged
from redshank.actors.txn_host import TXN_TOPIC, TxnHost, TxnIO, WhenServing, txn_host_name
from redshank.actors.watermarks import WATERMARKS, HighWatermark
from redshank.cluster.controller.replica_plan import ReplicaPlan
from redshank.cluster.group import GroupConfig
from redshank.cluster.kafka.topic_configs import effective
from redshank.cluster.partition.api import SetTimestampType
from redshank.cluster.raft.heartbeat_manager import GroupId
from redshank.cluster.raft.types import Message, NodeId
from redshank.cluster.txn.coordinator import TxnConfig
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage import FlushCoordinator, Log, LogConfig, StorageError

__all__ = [
    "MANAGER",
    "REPLICAS_VIEW",
    "RETENTION_CHECK_S",
    "AttachMessenger",
    "AttachTxnIO",
    "CompactCursor",
    "ControllerTopics",
    "Drop",
    "Ensure",
    "EnsureGroupHost",
    "EnsureReplica",
    "EnsureTxnHost",
    "PartitionManager",
    "Reconfigure",
    "ReplicaLeaders",
    "Routes",
    "TopicDeletedError",
    "apply_retention",
    "compact_logs",
    "log_config",
]

MANAGER = "partitions"
# Kafka checks every 5 min (log.retention.check.interval.ms); a pass over closed-segment
# metadata costs microseconds per log, so look more often and free disk sooner.
RETENTION_CHECK_S = 30.0
# Bytes of closed segments one compaction pass may read (the log cleaner shares the disk
# writer with flushes: a pass must not hold it for long).
COMPACT_BYTES_PER_PASS = 256 * 1024 * 1024
_log = structlog.get_logger("redshank.partitions")
# The replicas this core hosts for the controller, with their Raft view (tools and tests).
REPLICAS_VIEW = "cluster/replicas-core{core}.json"
REPLICAS_VIEW_EVERY_S = 0.25
# Kafka's transaction settings, but timed-out transactions are looked for every second (Kafka:
# transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s): a pass over one
# partition's transactions in memory costs microseconds, and an abandoned transaction holds
# back every read_committed reader of its partitions until it is aborted.
_TXN_CONFIG = TxnConfig(abort_timed_out_check_ms=1_000)
# Group id -> voter node -> the RPC address of the core hosting its replica (the messenger's
# `locate`); one per core, shared by the manager (which fills it) and the core's messenger.
Routes = dict[GroupId, dict[NodeId, Address]]


@dataclass(frozen=True, slots=True)
class AttachMessenger:
    """The core's Raft messenger (cluster mode): replicated partitions send and receive with it."""

    messenger: RaftMessenger
    node: NodeId


@dataclass(frozen=True, slots=True)
class ReplicaLeaders:
    """-> {partition name: (leader node id, term, in-sync node ids)} of the replicated
    partitions on this core, as their Raft cores know them now (leader 0: none known; in-sync
    replicas only where this replica leads, else ())."""


@dataclass(frozen=True, slots=True)
class ControllerTopics:
    """The ids of every topic the controller (group 0) holds: an `Ensure` of one of them is
    refused unless the controller backend opened it here (node-local topics open as before)."""

    topic_ids: frozenset[uuid.UUID]


@dataclass(frozen=True, slots=True)
class EnsureReplica:
    """Open this core's replica of a partition the controller assigned here (the controller
    backend sends it after each change of the topics table), replicated over the messenger.
    Idempotent; the reply comes once the replica runs (not once it leads). A replica of
    `__consumer_offsets` runs its group coordinator (`GroupHost`), which needs the topic's
    partition count (`partitions`) to own exactly its groups."""

    plan: ReplicaPlan
    partitions: int = 0  # the topic's partition count (0: not known; needed for groups only)


@dataclass(frozen=True, slots=True)
class EnsureGroupHost:
    """Start the group coordinator of `__consumer_offsets` partition `partition` (of
    `partitions`) on this core, after replaying its log."""

    partition: int
    partitions: int


@dataclass(frozen=True, slots=True)
class EnsureTxnHost:
    """Start the transaction coordinator of `__transaction_state` partition `partition` on
    this core; single node: the reply comes once it serves (its log replayed)."""

    partition: int


@dataclass(frozen=True, slots=True)
class AttachTxnIO:
    """The core's request paths for the transaction hosts (markers, producer ids)."""

    io: TxnIO


@dataclass(frozen=True, slots=True)
class Ensure:
    topic: str
    partition: int
    configs: tuple[tuple[str, str], ...]
    # The topic's id as the asker knows it: an id already dropped here is refused, so a stale
    # cache on another core cannot open a deleted topic's log again.
    topic_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """Delete partition `partition` of topic `topic_id`: stop its leader, close its log and
    remove its directory. Idempotent; the reply comes once the directory is gone."""

    topic: str
    partition: int
    topic_id: uuid.UUID
    directory: str | None = None  # under kafka/ (a controller replica's); None: <topic>-<p>


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """The topic's configs changed: the partition's log (if open here) takes them. The reply
    comes once the log has them; a partition not open here takes them when it opens."""

    topic: str
    partition: int
    configs: tuple[tuple[str, str], ...]


class TopicDeletedError(pykka.ActorDeadError):
    """An `Ensure` named a topic id that was dropped on this core."""


def log_config(configs: tuple[tuple[str, str], ...]) -> LogConfig:
    values = dict(configs)

    def num(key: str) -> int | None:
        raw = values.get(key)
        return None if raw is None or int(raw) < 0 else int(raw)

    segment_bytes = num("segment.bytes")
    policy = {p.strip() for p in effective(values, "cleanup.policy").split(",")}
    # Size and time retention belong to the delete policy (Kafka: a compact-only topic keeps
    # every key's latest record however old).
    delete = "delete" in policy
    defaults = LogConfig()
    return LogConfig(
        segment_bytes=segment_bytes if segment_bytes else defaults.segment_bytes,
        segment_ms=num("segment.ms"),
        retention_bytes=num("retention.bytes") if delete else None,
        retention_ms=num("retention.ms") if delete else None,
        compact="compact" in policy,
        delete_retention_ms=_or(num("delete.retention.ms"), defaults.delete_retention_ms),
        min_compaction_lag_ms=_or(num("min.compaction.lag.ms"),
                                  defaults.min_compaction_lag_ms),
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def log_append_time(configs: tuple[tuple[str, str], ...]) -> bool:
    return effective(dict(configs), "message.timestamp.type") == "LogAppendTime"


class CompactCursor:
    """Where the last compaction pass stopped (the directory of the last log it compacted): the
    next pass starts after it, so a budget-bound pass never starves the logs at the end of the
    list. One per core; touched by its disk-writer thread only."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: str | None = None

    def order(self, logs: list[Log]) -> list[Log]:
        ordered = sorted(logs, key=lambda log: log.dir)
        cut = next((i + 1 for i, log in enumerate(ordered) if log.dir == self.last), 0)
        return ordered[cut:] + ordered[:cut]


def apply_retention(logs: list[Log]) -> int:
    """Retention over `logs` (disk-writer thread): segments removed in all. A log closed since
    the list was taken is skipped; one whose disk fails is logged and skipped, the others go on."""
    removed = 0
    for log in logs:
        if log.closed or log.failed:
            continue
        try:
            removed += log.apply_retention()
        except StorageError as exc:
            _log.error("retention_failed", log=log.dir, error=repr(exc))
    return removed


def compact_logs(logs: list[Log], high_watermarks: dict[str, int], cursor: CompactCursor,
                 budget: int = COMPACT_BYTES_PER_PASS) -> int:
    """One compaction pass (the core's cleaner thread): the logs with `config.compact`, each
    below its high watermark in `high_watermarks` (by directory; a log not named there is
    skipped: nothing committed is known of it), until the pass has read `budget` bytes; the
    next pass starts after the last log compacted (`cursor`). Returns segments rewritten. A
    log whose disk fails (or that closes meanwhile) is logged and skipped."""
    spent = rewritten = 0
    for log in cursor.order(logs):
        hw = high_watermarks.get(log.dir)
        if spent >= budget:
            break
        if hw is None or log.closed or log.failed or not log.config.compact:
            continue
        try:
            # The high watermark is the offset after the last committed one.
            result = log.compact(max_offset=hw - 1)
            spent += result.bytes_read
            rewritten += result.rewritten
        except StorageError as exc:
            _log.error("compaction_failed", log=log.dir, error=repr(exc))
        cursor.last = log.dir
    return rewritten


class PartitionManager(LoopActor):
    def __init__(self, router: CoreRouter, data_dir: str, coordinator: FlushCoordinator,
                 writer: pykka.ActorRef[Any], loop: asyncio.AbstractEventLoop,
                 group_config: GroupConfig | None = None,
                 retention_check_s: float = RETENTION_CHECK_S, routes: Routes | None = None
                 ) -> None:
        super().__init__()
        self.router = router
        self.data_dir = data_dir
        self.coordinator = coordinator
        self.writer = writer
        self.loop = loop
        self._open: dict[str, LoopFuture[bool]] = {}
        self.leaders: dict[str, pykka.ActorRef[Any]] = {}
        self.logs: dict[str, Log] = {}
        self.dropped: set[uuid.UUID] = set()
        # The newest configs a Reconfigure gave, by partition name: they win over an Ensure's.
        self._configs: dict[str, tuple[tuple[str, str], ...]] = {}
        self.group_config = group_config or GroupConfig()
        self.retention_check_s = retention_check_s
        self._retention_timer: asyncio.TimerHandle | None = None
        self._compact_cursor = CompactCursor()
        # The log cleaner's thread: a pass reads and rewrites segments for as long as it takes.
        self._cleaner = concurrent.futures.ThreadPoolExecutor(1, "cleaner")
        self._probe_timer: asyncio.TimerHandle | None = None
        self._stopped = False
        # Group hosts whose log failed an fdatasync: reopened from the disk on next use.
        self._failed_logs: set[str] = set()
        self.routes: Routes = routes if routes is not None else {}
        self.messenger: RaftMessenger | None = None
        self.node = NodeId(0)
        self.groups: dict[str, GroupId] = {}  # replicated partitions hosted here, by name
        # Their preferred replicas' nodes, as the controller's latest plan names them.
        self.preferred: dict[str, NodeId] = {}
        self.controller_topics: frozenset[uuid.UUID] = frozenset()
        self._view_timer: asyncio.TimerHandle | None = None
        # Replicated group hosts by name: what reopens one whose log failed.
        self._group_plans: dict[str, tuple[EnsureGroupHost | EnsureTxnHost, ReplicaPlan]] = {}
        self.txn_io: TxnIO | None = None  # attached by the core's request paths
        self._group_backoff: dict[str, tuple[float, float]] = {}  # (next delay, last failure)
        # The partitions found on disk at start: their opens are the core's recovery (logged).
        self.recovery = StartupRecovery(
            _log.bind(core=router.core),
            owned_partition_dirs(os.path.join(data_dir, "kafka"), router.core, router.ncores))

    def on_start(self) -> None:
        self.recovery.start()
        self._reopen_txn_hosts()
        self._retention_timer = self.loop.call_later(self.retention_check_s, self._retain)
        if has_stats_block():  # a core process: nobody reads the table elsewhere (simulator)
            self._publish()

    def _reopen_txn_hosts(self) -> None:
        """Single node: start the transaction coordinators whose logs this core holds, as
        Kafka loads every `__transaction_state` partition at start: a transaction a restart
        left in PrepareCommit/PrepareAbort gets its markers without waiting for a client (the
        last stable offsets of its partitions wait on them)."""
        for directory in sorted(self.recovery.pending):
            topic, _, part = os.path.basename(directory).rpartition("-")
            if topic == TXN_TOPIC:
                fut = self._ensure_txn_host(EnsureTxnHost(int(part)))
                if isinstance(fut, LoopFuture):
                    fut.add_done_callback(_log_txn_open_failure)

    def _publish(self) -> None:
        """Every `PUBLISH_EVERY_S`: this core's partitions table for the admin API."""
        try:
            publish_partitions(self.router.core, list(self.leaders.values()))
        except Exception as exc:  # figures for tools: never worth a partition manager
            _log.error("partitions_publish_failed", error=repr(exc))
        self._probe_timer = self.loop.call_later(PUBLISH_EVERY_S, self._publish)

    def on_stop(self) -> None:
        self._stopped = True
        self._cleaner.shutdown(wait=False, cancel_futures=True)
        if self._probe_timer is not None:
            self._probe_timer.cancel()
            self._probe_timer = None
        if self._view_timer is not None:
            self._view_timer.cancel()
            self._view_timer = None
        if self._retention_timer is not None:
            self._retention_timer.cancel()
            self._retention_timer = None

    def _retain(self) -> None:
        """Every `retention_check_s`: one pass of retention over this core's logs on the disk
        writer (Kafka's log.retention.check.interval.ms), then one of compaction on the
        cleaner thread (Kafka's log cleaner), the next pass after this one ends."""
        logs = list(self.logs.values())

        async def run() -> None:
            try:
                await self.writer.ask(Blocking(functools.partial(apply_retention, logs)),
                                      block=False)
                hws = await self._high_watermarks()
                if hws:  # off the disk writer: a pass must not hold up the core's flushes
                    await self.loop.run_in_executor(self._cleaner, functools.partial(
                        compact_logs, logs, hws, self._compact_cursor))
            except pykka.ActorDeadError:
                return  # the core is stopping
            except Exception as exc:  # a bug in a pass must not end retention for good
                _log.error("retention_pass_failed", error=repr(exc))
            finally:
                if not self._stopped:
                    self._retention_timer = self.loop.call_later(self.retention_check_s,
                                                                 self._retain)

        self._retention_timer = None
        spawn(self.loop, run())

    async def _high_watermarks(self) -> dict[str, int]:
        """The high watermark of each compacted log here, by directory, as its partition
        actor knows it (a follower's: where it started, a safe lower bound of its commit)."""
        out: dict[str, int] = {}
        for name, log in list(self.logs.items()):
            ref = self.leaders.get(name)
            if ref is None or not log.config.compact:
                continue
            try:
                status = await ref.ask(ReplicaStatus(), block=False)
            except pykka.ActorDeadError:
                continue
            out[log.dir] = int(status["high_watermark"])
        return out

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, EnsureReplica):
            if message.plan.topic == GROUPS_TOPIC:  # its coordinator hosts it: one writer
                return self._ensure_group_host(
                    EnsureGroupHost(message.plan.partition, message.partitions), message.plan)
            if message.plan.topic == TXN_TOPIC:  # likewise its transaction coordinator's
                return self._ensure_txn_host(EnsureTxnHost(message.plan.partition), message.plan)
            return self._ensure_replica(message.plan)
        if isinstance(message, ReplicaLeaders):
            return spawn(self.loop, self._replica_leaders())
        if isinstance(message, ControllerTopics):
            self.controller_topics = message.topic_ids
            return True
        if isinstance(message, AttachMessenger):
            self.messenger = message.messenger
            self.node = message.node
            return True
        if isinstance(message, EnsureGroupHost):
            return self._ensure_group_host(message)
        if isinstance(message, EnsureTxnHost):
            return self._ensure_txn_host(message)
        if isinstance(message, AttachTxnIO):
            self.txn_io = message.io
            return True
        if isinstance(message, Drop):
            return self._drop(message)
        if isinstance(message, Reconfigure):
            return self._reconfigure(message)
        if not isinstance(message, Ensure):
            raise TypeError(f"partition manager got {type(message).__name__}")
        if message.topic in (GROUPS_TOPIC, TXN_TOPIC):
            # Its log belongs to the group (transaction) host; one writer per log.
            raise pykka.ActorDeadError(f"{message.topic} is served by its coordinator")
        if message.topic_id is not None and message.topic_id in self.dropped:
            raise TopicDeletedError(f"topic {message.topic!r} ({message.topic_id}) was deleted")
        name = partition_name(message.topic, message.partition)
        known = self._open.get(name)
        if known is not None:
            return True if known.done() and known.exception() is None else known
        if message.topic_id is not None and message.topic_id in self.controller_topics:
            # A topic of the controller: only the backend opens its partitions (replicated);
            # one not assigned to this core is not served here.
            raise pykka.ActorDeadError(f"{name} has no replica on this core")
        fut: LoopFuture[bool] = LoopFuture(self.loop)
        self._open[name] = fut
        directory = os.path.join(self.data_dir, "kafka", f"{message.topic}-{message.partition}")
        configs = self._configs.get(name, message.configs)
        asked = time.monotonic()
        opened: LoopFuture[OpenedPartition] = self.writer.ask(  # type: ignore[assignment]
            OpenPartition(directory, log_config(configs)), block=False)

        async def start() -> bool:
            ref: pykka.ActorRef[Any] | None = None
            try:
                part: OpenedPartition = await opened
                self._opened(directory, part, asked)
                ref = PartitionLeader.start(message.topic, message.partition, part,
                                            self.coordinator, self.writer, self.loop,
                                            log_append_time(configs), self._tell_watermark,
                                            message.topic_id,
                                            functools.partial(self._reopened, name),
                                            functools.partial(self._announce_leader,
                                                              message.topic, message.partition,
                                                              message.topic_id))
                # Served once an entry of its term committed: it knows its high watermark.
                await resolve(ref.ask(Ready(), block=False))
            except BaseException:
                if ref is not None:
                    ref.stop(block=False)
                if self._open.get(name) is fut:  # a Drop may have forgotten it already
                    del self._open[name]
                raise
            log = part.log
            self.leaders[name] = ref
            self.logs[name] = log
            self.router.register(name, ref)
            return True

        spawn(self.loop, start()).add_done_callback(
            lambda f: fut.fail(e) if (e := f.exception()) is not None else fut.set(True))
        return fut

    def _ensure_replica(self, plan: ReplicaPlan) -> LoopFuture[bool] | bool:
        """Open (once) the replica `plan` names, replicated over the messenger; its routes are
        refreshed on every call (a voter's address may change when it registers again)."""
        messenger = self.messenger
        if messenger is None:
            raise pykka.ActorDeadError("no Raft messenger on this core (not in cluster mode)")
        if plan.topic_id in self.dropped:
            raise TopicDeletedError(f"topic {plan.topic!r} ({plan.topic_id}) was deleted")
        self.routes[plan.group] = {n: (host, port) for n, host, port in plan.routes}
        name = partition_name(plan.topic, plan.partition)
        known = self._open.get(name)
        if known is not None:
            if self.preferred.get(name, plan.preferred) != plan.preferred:
                self.preferred[name] = plan.preferred
                ref = self.leaders.get(name)
                if ref is not None:  # else the open under way reads `self.preferred`
                    ref.tell(SetPreferred(plan.preferred))
            return True if known.done() and known.exception() is None else known
        fut: LoopFuture[bool] = LoopFuture(self.loop)
        self._open[name] = fut
        self.preferred[name] = plan.preferred
        directory = os.path.join(self.data_dir, "kafka", plan.directory)
        configs = self._configs.get(name, plan.configs)

        async def start() -> bool:
            try:
                asked = time.monotonic()
                part: OpenedPartition = await self.writer.ask(
                    OpenPartition(directory, log_config(configs)), block=False)
                self._opened(directory, part, asked)
            except BaseException:
                if self._open.get(name) is fut:
                    del self._open[name]
                raise
            replicas = Replicas(self.node, plan.voters, messenger.sender(plan.group),
                                seed=(int(plan.group) ^ int(self.node)) & 0xFFFFFFFF,
                                preferred=self.preferred.get(name, plan.preferred))
            ref = PartitionLeader.start(plan.topic, plan.partition, part, self.coordinator,
                                        self.writer, self.loop, log_append_time(configs),
                                        self._tell_watermark, plan.topic_id,
                                        functools.partial(self._reopened, name),
                                        functools.partial(self._announce_leader, plan.topic,
                                                          plan.partition, plan.topic_id),
                                        replicas=replicas)
            # Registered at once: a follower answers Kafka reads NOT_LEADER_OR_FOLLOWER itself.
            self.leaders[name] = ref
            self.logs[name] = part.log
            self.groups[name] = plan.group
            self.router.register(name, ref)
            messenger.register(plan.group, lambda m: _step(ref, m))
            _log.info("replica_opened", ntp=f"{plan.topic}/{plan.partition}",
                      group=int(plan.group), voters=sorted(int(v) for v in plan.voters))
            if self._view_timer is None and not self._stopped:
                self._view_timer = self.loop.call_later(REPLICAS_VIEW_EVERY_S, self._view)
            return True

        spawn(self.loop, start()).add_done_callback(
            lambda f: fut.fail(e) if (e := f.exception()) is not None else fut.set(True))
        return fut

    def _opened(self, directory: str, part: OpenedPartition, asked: float) -> None:
        size = sum(seg_bytes for _base, _term, seg_bytes in part.log.segments())
        self.recovery.opened(directory, size, time.monotonic() - asked)

    async def _replica_leaders(self) -> dict[str, tuple[int, int, tuple[int, ...]]]:
        out = {}
        for name in list(self.groups):
            ref = self.leaders.get(name)
            if ref is None:
                continue
            try:
                status = await ref.ask(ReplicaStatus(), block=False)
            except pykka.ActorDeadError:
                continue
            out[name] = (int(status["leader"]), int(status["term"]),
                         tuple(status.get("in_sync", ())))
        return out

    def _view(self) -> None:
        """Every `REPLICAS_VIEW_EVERY_S` while replicas are hosted: their Raft view, written to
        `REPLICAS_VIEW` (atomically, no fsync: a view for tools and tests)."""
        self._view_timer = None
        names = sorted(self.groups)

        async def run() -> None:
            rows = []
            for name in names:
                ref = self.leaders.get(name)
                if ref is None:
                    continue
                try:
                    status = await ref.ask(ReplicaStatus(), block=False)
                except pykka.ActorDeadError:
                    continue
                rows.append({"name": name, "group": int(self.groups.get(name, 0)), **status})
            path = os.path.join(self.data_dir, REPLICAS_VIEW.format(core=self.router.core))
            await self.loop.run_in_executor(None, _write_json, path,
                                            {"node": int(self.node), "replicas": rows})

        def again(_: Any) -> None:
            if not self._stopped and self._view_timer is None:
                self._view_timer = self.loop.call_later(REPLICAS_VIEW_EVERY_S, self._view)

        spawn(self.loop, run()).add_done_callback(again)

    def _reopened(self, name: str, log: Log) -> None:
        """A leader reopened its log after a disk failure: retention and configs go to it."""
        if name in self.logs:
            self.logs[name] = log

    def _announce_leader(self, topic: str, partition: int, topic_id: uuid.UUID | None,
                         epoch: int) -> None:
        """A partition of this core serves in `epoch`: every core's leaders table hears it."""
        message = LeaderChanged(topic, partition, topic_id, epoch)
        for core in range(self.router.ncores):
            try:
                self.router.ref(core, TOPIC_CACHE).tell(message)
            except (pykka.ActorDeadError, CoreDiedError):
                pass  # that core is down: when it restarts it reports the epoch as unknown
        # This core's transform manager starts the partition's transform instances here.
        with contextlib.suppress(pykka.ActorDeadError):
            # "transforms": transform_manager.TRANSFORMS (not imported: a cycle)
            self.router.ref(self.router.core, "transforms").tell(message)

    def _tell_watermark(self, core: int, message: HighWatermark) -> None:
        try:
            self.router.ref(core, WATERMARKS).tell(message)
        except pykka.ActorDeadError:
            pass  # that core is down: its fetches are gone, a restarted one subscribes again

    def _reconfigure(self, message: Reconfigure) -> LoopFuture[bool] | bool:
        name = partition_name(message.topic, message.partition)
        # An Ensure already on its way may carry the configs from before the change.
        self._configs[name] = message.configs
        opening = self._open.get(name)
        if opening is None:
            return True
        config = log_config(message.configs)

        async def apply() -> bool:
            with contextlib.suppress(Exception):  # a failed open has no log to reconfigure
                await opening
            log = self.logs.get(name)
            leader = self.leaders.get(name)
            if log is None or leader is None:
                return True

            def swap() -> bool:  # on the disk writer: the thread that rolls and retains
                log.config = config
                return True

            await self.writer.ask(Blocking(swap), block=False)
            await leader.ask(SetTimestampType(log_append_time(message.configs)), block=False)
            return True

        return spawn(self.loop, apply())

    def _drop(self, message: Drop) -> LoopFuture[bool]:
        self.dropped.add(message.topic_id)
        name = partition_name(message.topic, message.partition)
        self._configs.pop(name, None)
        opening = self._open.pop(name, None)
        directory = os.path.join(self.data_dir, "kafka", message.directory
                                 or f"{message.topic}-{message.partition}")

        async def drop() -> bool:
            if opening is not None and not opening.done():
                # An open in flight finishes first (its leader is stopped below); a failed one
                # leaves nothing to stop.
                with contextlib.suppress(Exception):
                    await opening
            ref = self.leaders.pop(name, None)
            log = self.logs.pop(name, None)
            self.router.unregister(name)
            self.preferred.pop(name, None)
            group = self.groups.pop(name, None)
            if group is not None:
                self.routes.pop(group, None)
                if self.messenger is not None:
                    self.messenger.unregister(group)
            if message.topic in (GROUPS_TOPIC, TXN_TOPIC):
                self.router.unregister(group_host_name(message.partition)
                                       if message.topic == GROUPS_TOPIC
                                       else txn_host_name(message.partition))
                self._group_plans.pop(name, None)
            if ref is not None:
                ref.stop(block=False)

            def remove() -> bool:  # on the disk writer: it owns the log's files
                if log is not None:
                    log.close(seal=False)
                shutil.rmtree(directory, ignore_errors=True)
                return True

            result: bool = await self.writer.ask(Blocking(remove), block=False)
            return result

        return spawn(self.loop, drop())

    def _ensure_group_host(self, message: EnsureGroupHost, plan: ReplicaPlan | None = None
                           ) -> Any:
        """Start (once) the group coordinator of the partition: single node, over this core's
        own log after replaying it (`plan` None); cluster mode, over this core's replica of it
        as `plan` names (replicated like `_ensure_replica`'s, registered like one for the
        messenger, the replicas view and Drop), replaying once it leads."""
        messenger = self.messenger
        if plan is not None:
            if messenger is None:
                raise pykka.ActorDeadError("no Raft messenger on this core (not in cluster mode)")
            if plan.topic_id in self.dropped:
                raise TopicDeletedError(f"topic {plan.topic!r} ({plan.topic_id}) was deleted")
            if message.partitions <= plan.partition:
                raise ValueError(f"{GROUPS_TOPIC} replica {plan.partition} without its count")
            self.routes[plan.group] = {n: (host, port) for n, host, port in plan.routes}
        name = (group_host_name(message.partition) if plan is None
                else partition_name(GROUPS_TOPIC, message.partition))
        known = self._open.get(name)
        if known is not None:
            return True if known.done() and known.exception() is None else known
        fut: LoopFuture[bool] = LoopFuture(self.loop)
        self._open[name] = fut
        directory = os.path.join(self.data_dir, "kafka", f"{GROUPS_TOPIC}-{message.partition}"
                                 if plan is None else plan.directory)
        distrust = name in self._failed_logs
        replicas = None
        if plan is not None and messenger is not None:
            self._group_plans[name] = (message, plan)
            replicas = self._coordinator_replicas(plan, messenger)

        async def start() -> bool:
            try:
                asked = time.monotonic()
                part: OpenedPartition = await self.writer.ask(
                    OpenPartition(directory, LogConfig(), distrust_cache=distrust), block=False)
                self._opened(directory, part, asked)
                # Replicated: the leader replays when it starts to serve, not now.
                records = [] if replicas is not None else await self.writer.ask(
                    Blocking(functools.partial(read_group_records, part.log)), block=False)
            except BaseException:
                if self._open.get(name) is fut:  # a Drop may have forgotten it already
                    del self._open[name]
                raise
            self._failed_logs.discard(name)
            ref = GroupHost.start(message.partition, message.partitions, part, self.coordinator,
                                  self.writer, self.loop, self.group_config, records,
                                  functools.partial(self._coordinator_log_failed, name,
                                                    group_host_name(message.partition)),
                                  replicas=replicas)
            self.leaders[name] = ref
            self.router.register(group_host_name(message.partition), ref)
            if plan is not None and messenger is not None:
                self._serve_coordinator_replica(name, ref, plan, messenger,
                                                f"{GROUPS_TOPIC}/{message.partition}")
            return True

        spawn(self.loop, start()).add_done_callback(
            lambda f: fut.fail(e) if (e := f.exception()) is not None else fut.set(True))
        return fut

    def _coordinator_log_failed(self, name: str, host_name: str, part: OpenedPartition
                                ) -> None:
        """A coordinator host's log failed (a group or a transaction host; it stops itself):
        forget it, close the log on the disk writer (before any reopen, which the writer runs
        after it), and let the next EnsureGroupHost / EnsureTxnHost open the partition again
        by recovery. A replica (cluster mode) is opened again here (after a backoff): the
        controller backend asks only when its plan changes."""
        self._open.pop(name, None)
        self.leaders.pop(name, None)
        self.router.unregister(host_name)
        self._failed_logs.add(name)
        self.writer.tell(Blocking(functools.partial(_close_failed, part)))
        if name in self._group_plans:
            group = self.groups.pop(name, None)
            if group is not None and self.messenger is not None:
                self.messenger.unregister(group)
            self._reopen_group_replica(name)

    def _coordinator_replicas(self, plan: ReplicaPlan, messenger: RaftMessenger) -> Replicas:
        """The Raft replica set of a coordinator partition's replica (cluster mode).
        Coordinators spread with their partitions' preferred replicas (the balance)."""
        return Replicas(self.node, plan.voters, messenger.sender(plan.group),
                        seed=(int(plan.group) ^ int(self.node)) & 0xFFFFFFFF,
                        preferred=plan.preferred)

    def _serve_coordinator_replica(self, name: str, ref: pykka.ActorRef[Any], plan: ReplicaPlan,
                                   messenger: RaftMessenger, ntp: str) -> None:
        """Register a coordinator host's replica like any replica: for the messenger, the
        replicas view and Drop."""
        self.groups[name] = plan.group
        messenger.register(plan.group, lambda m: _step(ref, m))
        _log.info("replica_opened", ntp=ntp, group=int(plan.group),
                  voters=sorted(int(v) for v in plan.voters))
        if self._view_timer is None and not self._stopped:
            self._view_timer = self.loop.call_later(REPLICAS_VIEW_EVERY_S, self._view)

    def _reopen_group_replica(self, name: str) -> None:
        """Open a replicated group host's replica again after its log failed, after a backoff
        (0.1 s doubling to 5 s per failure of it, back to 0.1 s a minute after the last; the
        disk may still be failing, and a follower's next flush would fail it again at once);
        a failed open is retried the same way. Ends once it opened, or was dropped."""
        now = self.loop.time()
        delay, last = self._group_backoff.get(name, (RECOVER_MIN_S, now))
        if now - last > 60.0:
            delay = RECOVER_MIN_S
        self._group_backoff[name] = (min(delay * 2, RECOVER_MAX_S), now)

        def reopen() -> None:
            replicated = self._group_plans.get(name)
            if self._stopped or replicated is None or name in self._open:
                return  # stopping, dropped, or opened again meanwhile
            try:
                ask, plan = replicated
                opened = (self._ensure_group_host(ask, plan) if isinstance(ask, EnsureGroupHost)
                          else self._ensure_txn_host(ask, plan))
            except pykka.ActorDeadError as exc:
                _log.error("group_replica_reopen_refused", name=name, error=repr(exc))
                return
            if isinstance(opened, LoopFuture):
                opened.add_done_callback(again)

        def again(f: LoopFuture[bool]) -> None:
            if (exc := f.exception()) is not None:
                _log.error("group_replica_reopen_failed", name=name, error=repr(exc))
                self._reopen_group_replica(name)

        self.loop.call_later(delay, reopen)


    def _ensure_txn_host(self, message: EnsureTxnHost, plan: ReplicaPlan | None = None) -> Any:
        """Start (once) the transaction coordinator of the partition, as `_ensure_group_host`
        does the group coordinator's: single node over this core's own log (the reply once it
        serves), cluster mode over this core's replica `plan` names (serving once it leads)."""
        messenger = self.messenger
        if plan is not None:
            if messenger is None:
                raise pykka.ActorDeadError("no Raft messenger on this core (not in cluster mode)")
            if plan.topic_id in self.dropped:
                raise TopicDeletedError(f"topic {plan.topic!r} ({plan.topic_id}) was deleted")
            self.routes[plan.group] = {n: (host, port) for n, host, port in plan.routes}
        name = partition_name(TXN_TOPIC, message.partition)
        known = self._open.get(name)
        if known is not None:
            return True if known.done() and known.exception() is None else known
        fut: LoopFuture[bool] = LoopFuture(self.loop)
        self._open[name] = fut
        directory = os.path.join(self.data_dir, "kafka", f"{TXN_TOPIC}-{message.partition}"
                                 if plan is None else plan.directory)
        distrust = name in self._failed_logs
        replicas = None
        if plan is not None and messenger is not None:
            self._group_plans[name] = (message, plan)
            replicas = self._coordinator_replicas(plan, messenger)

        async def start() -> bool:
            try:
                asked = time.monotonic()
                part: OpenedPartition = await self.writer.ask(
                    OpenPartition(directory, LogConfig(), distrust_cache=distrust), block=False)
                self._opened(directory, part, asked)
            except BaseException:
                if self._open.get(name) is fut:
                    del self._open[name]
                raise
            self._failed_logs.discard(name)
            ref = TxnHost.start(message.partition, part, self.coordinator, self.writer,
                                self.loop, _TXN_CONFIG, lambda: self.txn_io,
                                functools.partial(self._coordinator_log_failed, name,
                                                  txn_host_name(message.partition)),
                                replicas=replicas)
            self.leaders[name] = ref
            self.router.register(txn_host_name(message.partition), ref)
            if plan is not None and messenger is not None:
                self._serve_coordinator_replica(name, ref, plan, messenger,
                                                f"{TXN_TOPIC}/{message.partition}")
                return True
            return bool(await resolve(ref.ask(WhenServing(), block=False)))

        spawn(self.loop, start()).add_done_callback(
            lambda f: fut.fail(e) if (e := f.exception()) is not None else fut.set(True))
        return fut


def _log_txn_open_failure(f: LoopFuture[bool]) -> None:
    if (exc := f.exception()) is not None:  # the next transactional request opens it again
        _log.error("txn_host_open_failed", error=repr(exc))


def _close_failed(part: OpenedPartition) -> None:
    """Close a partition whose disk failed (writer thread): whatever its files say, they close,
    and an error here must not stop the disk writer (its flush may fail again)."""
    for close in (functools.partial(part.log.close, seal=False), part.kv.close):
        try:
            close()
        except StorageError as exc:
            _log.warning("close_failed_partition", log=part.log.dir, error=str(exc))


def _step(ref: pykka.ActorRef[Any], message: Message) -> None:
    with contextlib.suppress(pykka.ActorDeadError):  # a replica stopping: Raft resends
        ref.tell(message)


def _write_json(path: str, record: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)
