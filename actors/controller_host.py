"""The controller (Raft group 0) hosted on a node's event loop, over real files and real RPC.

Concern: running one node's replica of group 0 (`cluster/partition/Partition` over a storage
`Log` + `KvStore` in the directory it is given) the way the simulator hosts replicas
(`cluster/raft/sim/host.py`): a tick timer, `take_io` after every input, one flush at a time,
Raft messages to the peers' controllers over `RpcClient` (`raft_peers.py`), inbound ones from an
`RpcServer` handler; committed command batches applied in offset order to this node's
`ControllerStm` (`cluster/controller/controller_log.py`); proposals from any node
(`controller_frontend.py`).

    propose(cmd) --encode--> leader? append (acks=all) : call PROPOSE on the leader --+
                                                                                      v
    tick timer / RAFT one-way / PROPOSE call --> Partition (step, tick, append) --> take_io
        io.send   --> RaftPeers (one-way RAFT, dropped on error: Raft retries)
        io.load   --> executor thread: EntryLoad.read --> entries_loaded
        flush     --> executor thread: kvstore, then log --> flush_done
        committed --> ControllerLog.apply --> ControllerStm --> the proposer's Applied

Flushes: while one runs (on the host's own single thread), inputs that may write the log or the
kvstore (ticks, Raft messages, appends, loaded entries) wait and run when it is done. So the
kvstore and the log are never written between their two fdatasyncs, which closes the ordering
gap `cluster/partition/README.md` describes for the partition host (a batch durable without the
no-op or configuration entry before it). Group 0's traffic is small: an input waits at most one
flush. Messages that depend on durable state leave only after it (`Partition` holds them until
`flush_done`).

Proposals (`controller_frontend.py`): from any node, appended on the leader, answered with what
this node's own state machine made of the batch. Must not know: Kafka requests, how the node
starts or what it does with the tables (it reads `stm`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import struct
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

from redshank.actors.controller_frontend import (
    ControllerFrontend,
    ControllerMethod,
    ProposeFailed,
)
from redshank.actors.raft_peers import RaftPeers, decode_raft
from redshank.actors.rpc import RpcClient, RpcError, RpcServer
from redshank.cluster.controller import Applied, Command, ControllerStm, decode_command
from redshank.cluster.controller.controller_log import ControllerLog, ProposeReply, ProposeStatus
from redshank.cluster.controller.controller_replica import (
    READ_BYTES,
    SNAPSHOT_KEY,
    apply_batches,
    committed_end,
    restore_snapshot,
)
from redshank.cluster.kafka.producer_state import ProducerStateTable
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.partition.partition import Partition
from redshank.cluster.partition.raft_log import EntryLoad, Loaded, RecoveredRaft, recover
from redshank.cluster.raft.heartbeat_manager import GroupId
from redshank.cluster.raft.raft import RaftConfig
from redshank.cluster.raft.types import NO_NODE, NodeId, Notice, NoticeKind, ProposeError, Role
from redshank.cluster.raft.wire import RaftWireError
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.errors import DecodeError
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage import FileLayer, KvStore, Log, LogConfig
from redshank.storage.errors import StorageError

__all__ = ["CONTROLLER_GROUP", "ControllerHost", "ControllerHostConfig", "ControllerMethod",
           "ProposeFailed"]

CONTROLLER_GROUP = GroupId(0)
CONTROLLER_LOG_CONFIG = LogConfig(segment_bytes=16 * 1024 * 1024, preallocate_step=1024 * 1024)

T = TypeVar("T")
_COUNT = struct.Struct(">q")
_log = structlog.get_logger("redshank.controller")


@dataclass(frozen=True, slots=True)
class ControllerHostConfig:
    tick_s: float = 0.1  # Raft's clock: timeouts are in ticks
    election_ticks: int = 10  # an election after 10-20 silent ticks (RaftConfig)
    propose_timeout_s: float = 10.0  # a proposal's whole deadline, retries included
    forward_timeout_s: float = 2.0  # one PROPOSE call to the leader
    resend_after_s: float = 2.0  # a proposal appended but not applied by then is sent again
    snapshot_every: int = 64  # commands between snapshots in the kvstore (0: never)
    # Commands are small: small segments, pre-allocated in small steps; kept whole (the log
    # is replayed from its start, or from the last snapshot, at every restart).
    log_config: LogConfig = CONTROLLER_LOG_CONFIG


class ControllerHost:
    """One node's replica of group 0, on the loop of the node's core 0 (in tests, any loop):
    created by the node's startup with its id, the seed voters, a directory and the peers'
    controller RPC addresses, started by `start()` (it registers its handlers on `server`),
    ended by `close()` (the server is its owner's to stop)."""

    def __init__(self, node: NodeId, directory: str, voters: frozenset[NodeId],
                 peers: Mapping[NodeId, tuple[str, int]], server: RpcServer, *,
                 config: ControllerHostConfig | None = None, seed: int | None = None,
                 files: FileLayer | None = None) -> None:
        """`seed`: Raft's randomness (election timeouts); `files`: the file layer (tests:
        `PowerLossFiles`; default the OS's)."""
        self.node = node
        self.files = files
        self.directory = directory
        self.voters = voters
        self.config = config or ControllerHostConfig()
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.server = server
        self.log = _log.bind(node=node, group=int(CONTROLLER_GROUP))
        self.clog = ControllerLog()
        self.peers = RaftPeers(CONTROLLER_GROUP, ControllerMethod.RAFT,
                               {n: a for n, a in peers.items() if n != node}, log=self.log)
        self.frontend = ControllerFrontend(self, self.config.propose_timeout_s,
                                           self.config.forward_timeout_s,
                                           self.config.resend_after_s)
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"controller-{node}")
        self._part: Partition | None = None
        self._storage: tuple[Log, KvStore] | None = None
        self._closed = False
        self._flushing = False
        self._flush_owed = False
        self._failed: BaseException | None = None
        self._reading = False  # an executor read of committed batches is running
        self._deferred: list[Callable[[], None]] = []  # inputs waiting for the running flush
        self._idle: list[asyncio.Future[None]] = []  # waiting for no flush to run
        self._io_futures: set[asyncio.Future[Any]] = set()  # executor work in flight
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._leader_waiters: list[asyncio.Future[None]] = []
        self._seen_leader: tuple[int, int] = (-1, -1)  # (term, leader) last reported
        self._tick_task: asyncio.Task[None] | None = None
        # The Kafka offset after the last command this node's log held at start: what it
        # replays before its state says what to host (`replay_end`).
        self._replay_end = 0
        self.leader_changes = 0
        self.flushes = 0  # run on the host's thread
        self.flushes_skipped = 0  # nothing was left to write

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open and recover the log (executor thread), restore the snapshot, register the RPC
        handlers, start ticking."""
        loop = asyncio.get_running_loop()
        opening = time.monotonic()
        log, kv, recovered = await loop.run_in_executor(self._executor, self._open)
        opened_s = time.monotonic() - opening
        self._storage = (log, kv)
        restore_snapshot(kv, self.clog.stm)
        cfg = RaftConfig(id=self.node, rng=random.Random(self.seed),
                         election_ticks=self.config.election_ticks)
        self._part = Partition(log, kv, recovered, ProducerStateTable(), voters=self.voters,
                               node=self.node, raft=cfg)
        self._replay_end = int(self._part.raft_log.offsets.next_offset())
        self.server.register(ControllerMethod.RAFT, self._on_raft)
        self.server.register(ControllerMethod.PROPOSE, self._on_propose)
        self.server.register(ControllerMethod.APPLIED, self._on_applied)
        self.log.info("controller_started", voters=sorted(self.voters),
                      applied_from_snapshot=self.clog.next_offset,
                      committed_end=self._committed_end(),
                      # the startup recovery of group 0's log and kvstore (issue 15)
                      log_mb=round(sum(b for _o, _t, b in log.segments()) / (1 << 20), 1),
                      recovery_s=round(opened_s, 3))
        self._part.start()
        self._turn()
        self._tick_task = loop.create_task(self._ticker())

    def _open(self) -> tuple[Log, KvStore, RecoveredRaft]:
        log = Log.open(self.directory, self.config.log_config, files=self.files)
        kv = KvStore.open(os.path.join(self.directory, "raft"), files=self.files)
        return log, kv, recover(log, kv)

    async def close(self, *, clean: bool = True) -> None:
        """Stop ticking and sending, wait for the flush or read running, close the files
        (flushed). Proposals waiting here fail. Idempotent. `clean=False` is a crash: nothing
        more is written or flushed and the files are left as they are (for tests over
        simulated files: what was not fsynced is then lost to their `power_loss`)."""
        if self._closed:
            return
        self._closed = True
        for method in ControllerMethod:
            self.server.unregister(method)  # the server is its owner's: it lives on
        if self._tick_task is not None:
            self._tick_task.cancel()
            await asyncio.wait([self._tick_task])
        await self.peers.close()
        if self._io_futures:
            await asyncio.wait(list(self._io_futures))
        for fut in [*self._idle, *self._leader_waiters, *(f for _, f in self._applied_waiters)]:
            if not fut.done():
                fut.set_exception(ProposeFailed("controller host closed"))
        for token in self.clog.drop_watches():
            if isinstance(token, asyncio.Future) and not token.done():
                token.set_exception(ProposeFailed("controller host closed"))
        self._idle, self._leader_waiters, self._applied_waiters = [], [], []
        if self._storage is not None and clean:
            log, kv = self._storage
            await asyncio.get_running_loop().run_in_executor(self._executor, _close, log, kv)
        self._executor.shutdown(wait=True)
        self.log.info("controller_stopped", applied=self.clog.next_offset, clean=clean)

    # ---- what the node reads ------------------------------------------------------------------

    @property
    def stm(self) -> ControllerStm:
        return self.clog.stm

    @property
    def part(self) -> Partition:
        assert self._part is not None, "controller host not started"
        return self._part

    @property
    def leader(self) -> NodeId:
        """The leader this node knows of (NO_NODE: none)."""
        return NO_NODE if self._part is None else self._part.consensus.core.lead

    @property
    def is_leader(self) -> bool:
        return self._part is not None and self._part.consensus.core.role == Role.LEADER

    @property
    def committed_count(self) -> int | None:
        """On a leader that committed an entry of its term: how many commands it committed
        (at least what it applied: a change another node answered once it applied it is
        committed here, not always applied yet). None otherwise: before that, a new leader's
        commit may be short of its predecessor's."""
        if self._part is None or not self._part.consensus.core.leader_ready():
            return None
        return max(self.clog.next_offset, self._committed_end())

    @property
    def term(self) -> int:
        return 0 if self._part is None else self._part.term

    @property
    def members(self) -> frozenset[NodeId]:
        """Group 0's members in the configuration in force here: voters and learners."""
        return frozenset() if self._part is None else \
            self._part.consensus.core.config.members()

    def route(self, node: NodeId, address: tuple[str, int]) -> None:
        """Reach `node`'s controller at `address` (a member that registered, or moved)."""
        if node != self.node:
            self.peers.set_address(node, address)

    def add_learners(self, nodes: frozenset[NodeId]) -> bool:
        """On the leader: propose group 0's configuration with `nodes` as learners too (they
        replicate the controller's log and apply it, and never vote). False when this node
        cannot now (not the leader, not ready, a change under way): the caller tries again."""
        if self._part is None or self._closed or self._flushing or not self.is_leader:
            return False
        core = self._part.consensus.core
        config = core.config
        if nodes <= config.members():
            return True
        result = self._part.consensus.propose_config(config.voters, config.learners | nodes)
        self._turn()
        return not isinstance(result, ProposeError)

    async def wait_applied(self, count: int, timeout: float | None = None) -> None:
        """Until this node applied the first `count` commands (`stm.last_applied >= count`:
        the command at Kafka offset `count - 1` and every one before it)."""
        await asyncio.wait_for(self.applied_future(count), timeout)

    def applied_future(self, count: int) -> asyncio.Future[None]:
        """Set once this node applied the first `count` commands (cancel it to give up)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.clog.next_offset >= count:
            fut.set_result(None)
        else:
            self._applied_waiters.append((count, fut))
        return fut

    @property
    def replay_end(self) -> int:
        """The Kafka offset after the last command in this node's log at start. Until it applied
        that far, `stm` may be an old snapshot's state or a replay midway (a topic deleted since
        still listed): the state to host replicas from is the one after it. (An uncommitted
        tail a new leader truncates is replaced by other commands: the count is reached once as
        many commit, which is why the controller backend's wait for it is bounded.)"""
        return self._replay_end

    async def leader_applied(self, timeout: float) -> int | None:
        """How many commands the leader committed (a state this node reaches by applying as
        many), asked of every other voter at once (only a leader answers with a
        count; this node need not know which one leads: a restarted node learns it from the
        leader's next message, which can wait out that client's reconnect backoff); None when
        no voter answers with one within `timeout` (no leader now: an election, a full
        restart)."""
        calls = [asyncio.ensure_future(self._ask_applied(client, timeout))
                 for n in sorted(self.voters) if n != self.node
                 and (client := self.peers.client(n)) is not None]
        try:
            for next_done in asyncio.as_completed(calls):
                count = await next_done
                if count is not None:
                    return count
            return None
        finally:
            for call in calls:
                call.cancel()

    @staticmethod
    async def _ask_applied(client: RpcClient, timeout: float) -> int | None:
        try:
            raw = await client.call(ControllerMethod.APPLIED, b"", timeout=timeout)
        except RpcError:
            return None
        return _COUNT.unpack(raw)[0] if len(raw) == _COUNT.size else None

    def _on_applied(self, payload: memoryview) -> bytes:
        del payload
        count = self.committed_count
        return b"" if count is None else _COUNT.pack(count)

    @property
    def replayed(self) -> bool:
        """This node applied every command its log held at start (`replay_end`)."""
        return self.clog.next_offset >= self._replay_end

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_leader(self, timeout: float | None = None) -> NodeId:
        """The leader, once this node knows one."""
        async with asyncio.timeout(timeout):
            while self.leader == NO_NODE:
                await self.leader_future()
        return self.leader

    # ---- proposals ----------------------------------------------------------------------------

    async def propose(self, command: Command, *, timeout: float | None = None) -> Applied:
        """Propose `command` from this node and return what applying it did (on every node
        alike). Raises `ProposeFailed` past `timeout` (default `propose_timeout_s`)."""
        return await self.frontend.propose(command, timeout=timeout)

    async def append_here(self, batch: bytes) -> ProposeReply:
        """Append `batch` (acks=all) if this node leads: where in the Kafka offsets, or why not."""
        await self._when_idle()
        if self._closed or self._failed is not None:
            return ProposeReply(ProposeStatus.NOT_LEADER)
        part = self.part
        core = part.consensus.core
        if core.role != Role.LEADER:
            return ProposeReply(ProposeStatus.NOT_LEADER, leader=int(core.lead))
        base = int(part.raft_log.offsets.next_offset())
        if part.append(Append(bytearray(batch), -1, None), None) is not None:
            return ProposeReply(ProposeStatus.NOT_LEADER, leader=int(core.lead))
        self._turn()
        return ProposeReply(ProposeStatus.APPENDED, base)

    async def _on_propose(self, payload: memoryview) -> bytes:
        """A follower forwarded a proposal: append it if this node leads."""
        try:
            decode_command(payload)
        except DecodeError:
            return ProposeReply(ProposeStatus.BAD_BATCH).encode()
        if self._part is None:
            return ProposeReply(ProposeStatus.NOT_LEADER).encode()
        # The payload is the transport's memory: copied before this handler waits.
        return (await self.append_here(bytes(payload))).encode()

    # ---- inputs -------------------------------------------------------------------------------

    def _input(self, fn: Callable[[], None]) -> None:
        """Run an input that may write the log or kvstore now, or after the running flush."""
        if self._closed or self._part is None or self._failed is not None:
            return
        if self._flushing:
            self._deferred.append(fn)
            return
        fn()
        self._turn()

    async def _when_idle(self) -> None:
        while self._flushing and not self._closed:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(fut)
            await fut

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._closed:
            # Late (a busy loop): the ticks missed are not made up in a burst, which would
            # run election timeouts out before the messages waiting in the sockets are read.
            next_at = max(next_at + self.config.tick_s, loop.time())
            await asyncio.sleep(next_at - loop.time())
            self._input(self.part.tick)

    def _on_raft(self, payload: memoryview) -> None:
        try:
            group, msg = decode_raft(payload)
        except RaftWireError as exc:
            self.log.warning("raft_message_dropped", error=str(exc))
            return
        if group != CONTROLLER_GROUP or msg.dst != self.node:
            return
        self._input(lambda: self.part.step(msg))

    # ---- the turn -----------------------------------------------------------------------------

    def _turn(self) -> None:
        """Do what the partition asks: send, load, flush; then apply what committed."""
        part = self.part
        while True:
            io = part.take_io()
            if io.send:
                self.peers.send(io.send)
            for load in io.load:
                self._load(load)
            for n in io.notices:
                self._notice(n)
            self._flush_owed |= io.start_flush
            if not self._flush_owed or self._flushing or self._failed is not None:
                break
            if not self._flush():
                break  # running on the host's thread; else already durable: take the io again
        core = part.consensus.core
        if (int(core.term), int(core.lead)) != self._seen_leader:
            self._seen_leader = (int(core.term), int(core.lead))
            waiters, self._leader_waiters = self._leader_waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(None)
        self._apply_committed()

    def _notice(self, n: Notice) -> None:
        if n.kind == NoticeKind.BECAME_LEADER:
            self.leader_changes += 1
            self.log.info("became_leader", term=int(n.term))
        elif n.kind == NoticeKind.STEPPED_DOWN:
            self.log.info("stepped_down", term=int(n.term))

    def leader_future(self) -> asyncio.Future[None]:
        """Set at the next change of term or leader."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(self._leader_waiters) > 64:  # waits given up (timed out) are dropped here
            self._leader_waiters = [f for f in self._leader_waiters if not f.done()]
        self._leader_waiters.append(fut)
        return fut

    def _run_io(self, fn: Callable[[], T], done: Callable[[asyncio.Future[T]], None]) -> None:
        """`fn` on the host's thread; `done(future)` on the loop, unless the host closed."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().run_in_executor(self._executor, fn)
        self._io_futures.add(fut)

        def finished(f: asyncio.Future[T]) -> None:
            self._io_futures.discard(f)
            if not self._closed:
                done(f)

        fut.add_done_callback(finished)

    def _load(self, load: EntryLoad) -> None:
        """Entries a lagging follower needs that are no longer in memory: read them on the
        host's thread. A failed read steps in nothing (Raft asks again)."""
        log = self.storage[0]

        def done(f: asyncio.Future[Loaded]) -> None:
            loaded = Loaded([]) if f.exception() is not None else f.result()
            self._input(lambda: self.part.entries_loaded(loaded))

        self._run_io(lambda: load.read(log), done)

    # ---- flushes ------------------------------------------------------------------------------

    @property
    def storage(self) -> tuple[Log, KvStore]:
        assert self._storage is not None, "controller host not started"
        return self._storage

    def _flush(self) -> bool:
        """One flush on the host's thread: the kvstore (if written), then the log; inputs wait
        for it (see the module docstring). True if there was nothing to write (done now)."""
        log, kv = self.storage
        part = self.part
        self._flush_owed = False
        part.flush_begin()
        with_kv = part.kv_dirty or kv.dirty_offset > kv.flushed_offset
        if not with_kv and log.flushed_offset >= log.dirty_offset:
            # Already durable (a commit-only change of the hard state is not written):
            # Raft hears it now, without a trip to the thread.
            self.flushes_skipped += 1
            part.flush_done()
            return True
        self._flushing = True
        self.flushes += 1
        if with_kv:
            part.kv_flushing()

        def sync() -> None:
            if with_kv:
                kv.flush()
            log.flush()

        self._run_io(sync, self._flushed)
        return False

    def _flushed(self, f: asyncio.Future[None]) -> None:
        self._flushing = False
        exc = f.exception()
        part = self.part
        if exc is not None:
            # The controller's disk failed: stop taking inputs (a restart recovers).
            self._failed = exc
            self.log.error("controller_flush_failed", error=str(exc))
            part.flush_failed(PartitionResult(ErrorCode.KAFKA_STORAGE_ERROR, -1, -1, str(exc)))
        else:
            part.flush_done()
        deferred, self._deferred = self._deferred, []
        if self._failed is None:
            for fn in deferred:
                fn()
        idle, self._idle = self._idle, []
        for fut in idle:
            if not fut.done():
                fut.set_result(None)
        self._turn()

    # ---- apply --------------------------------------------------------------------------------

    def _committed_end(self) -> int:
        """The Kafka offset after the last entry both committed and durable here."""
        return committed_end(self.part)

    def _apply_committed(self) -> None:
        """Apply the committed batches from memory; a read the disk must serve goes to the
        host's thread and continues from there."""
        if self._reading:
            return
        log = self.storage[0]
        end = self._committed_end()
        while self.clog.next_offset < end:
            start = self.clog.next_offset
            data = log.read_cached(start, READ_BYTES, end - 1)
            if data is None:
                self._reading = True

                def done(f: asyncio.Future[bytes | memoryview]) -> None:
                    self._reading = False
                    if f.exception() is not None:
                        self.log.error("controller_read_failed", error=str(f.exception()))
                        return
                    self._applied(f.result(), end)
                    self._apply_committed()

                self._run_io(functools.partial(log.read, start, READ_BYTES, end - 1), done)
                return
            self._applied(data, end)
            if self.clog.next_offset == start:
                self.log.error("controller_apply_stuck", offset=start, end=end)
                return

    def _applied(self, data: bytes | memoryview, end: int) -> None:
        done = apply_batches(self.clog, data, end, self.config.snapshot_every)
        for offset, why in done.bad:
            self.log.error("controller_batch_skipped", offset=offset, error=why)
        for r in done.resolved:
            fut = r.token
            assert isinstance(fut, asyncio.Future)
            if not fut.done():
                fut.set_result(r.applied)
        snap = done.snapshot
        if snap is not None:
            self._input(lambda: self._put_snapshot(snap))
        self._wake_applied()

    def _put_snapshot(self, snap: bytes) -> None:
        # Written with the next flush (the kvstore is flushed whenever it holds writes).
        self.storage[1].put(SNAPSHOT_KEY, snap)

    def _wake_applied(self) -> None:
        applied = self.clog.next_offset
        still = []
        for count, fut in self._applied_waiters:
            if fut.done():
                continue
            if applied >= count:
                fut.set_result(None)
            else:
                still.append((count, fut))
        self._applied_waiters = still


def _close(log: Log, kv: KvStore) -> None:
    """A clean stop: the kvstore, then the log, flushed and closed (host thread)."""
    try:
        kv.close()
    finally:
        try:
            log.close()
        except StorageError as exc:
            _log.warning("controller_log_close_failed", error=str(exc))

