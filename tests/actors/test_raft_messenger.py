"""Replicas of partitions on three "nodes" (each its own RPC server, Raft messenger, disk-writer
thread and partition hosts, on one event loop; real TCP on 127.0.0.1): a leader is elected,
acks=all batches replicate and commit over the RPC, heartbeats of both groups between a pair of
nodes travel together, and when the leader's node goes away (its server, messenger and hosts
stop) the other two elect a new leader that holds every acknowledged batch and takes more."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pytest

from redshank.actors import raft_messenger
from redshank.actors.disk_writer import DiskWriter, OpenPartition
from redshank.actors.partition_host import PartitionHost, Replicas
from redshank.actors.raft_messenger import SEND_TIMEOUT_S, Address, RaftMessenger, RaftMethod
from redshank.actors.rpc import RpcClient, RpcServer
from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.raft.heartbeat_manager import GroupId
from redshank.cluster.raft.types import (
    Entry,
    EntryKind,
    Index,
    Message,
    MessageType,
    NodeId,
    Term,
)
from redshank.protocol.records import BatchBuilder, iter_records
from redshank.storage import BatchCache, FlushCoordinator, Log, LogConfig

NODES = (1, 2, 3)
VOTERS = frozenset(NodeId(n) for n in NODES)
GROUPS = (GroupId(1), GroupId(2))
DEADLINE_S = 20.0


def batch(value: bytes) -> bytearray:
    b = BatchBuilder()
    b.append(value, timestamp=1000)
    return bytearray(b.build())


def values(log: Log) -> list[bytes]:
    out: list[bytes] = []
    offset = log.start_offset
    while offset <= log.dirty_offset:
        got = list(iter_records(log.read(offset, 1 << 20), verify_crc=False))
        out += [r.value or b"" for r in got]
        offset = got[-1].offset + 1
    return out


async def wait_for(what: str, cond: Any) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE_S} s")
        await asyncio.sleep(0.01)  # a condition the nodes' timers and sockets move; bounded


class Node:
    def __init__(self, n: int) -> None:
        self.n = n
        self.server = RpcServer("127.0.0.1", 0)
        self.hosts: dict[GroupId, PartitionHost] = {}
        self.answers: dict[Hashable, PartitionResult] = {}
        self.writer: Any = None
        self.messenger: RaftMessenger | None = None
        self.down = False

    async def start(self, root: Path, locate: Any) -> None:
        loop = asyncio.get_running_loop()
        await self.server.start()
        self.messenger = RaftMessenger(NodeId(self.n), loop, self.server, locate,
                                       heartbeat_s=0.02)
        coordinator = FlushCoordinator()
        self.writer = DiskWriter.start(coordinator, BatchCache(1 << 20))
        for g in GROUPS:
            opened = await self.writer.ask(
                OpenPartition(str(root / f"n{self.n}" / f"g{g}"), LogConfig()), block=False)
            host = PartitionHost(
                opened, coordinator, self.writer, loop,
                on_answer=lambda w, r: self.answers.__setitem__(w, r),
                on_high_watermark=lambda hw: None,
                on_flush_failed=lambda exc: pytest.fail(f"flush failed: {exc!r}"),
                replicas=Replicas(NodeId(self.n), VOTERS, self.messenger.sender(g),
                                  tick_s=0.02, seed=self.n * 10 + g))
            self.hosts[g] = host
            self.messenger.register(g, host.step)

    async def stop(self) -> None:
        self.down = True
        for h in self.hosts.values():
            h.stop()
        if self.messenger is not None:
            await self.messenger.close()
        await self.server.stop()
        if self.writer is not None:
            await self.writer.stop(block=False)
            self.writer = None


def test_replicas_over_rpc_elect_replicate_and_fail_over(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = {n: Node(n) for n in NODES}
        addresses: dict[int, Address] = {}

        def locate(group: GroupId, node: NodeId) -> Address | None:
            return addresses.get(int(node))  # a stopped node's port stays (nobody answers)

        try:
            for node in nodes.values():
                await node.start(tmp_path, locate)
                addresses[node.n] = node.server.address
            g = GROUPS[0]

            def leaders(group: GroupId) -> list[int]:
                return [n for n, node in nodes.items()
                        if not node.down and node.hosts[group].part.is_ready_leader()]

            await wait_for("leaders", lambda: all(len(leaders(x)) == 1 for x in GROUPS))
            first = nodes[leaders(g)[0]]
            for i in range(20):
                assert first.hosts[g].append(Append(batch(b"v%d" % i), -1, None), i) is None
            await wait_for("20 acks", lambda: len(first.answers) == 20)
            assert [first.answers[i] for i in range(20)] == [
                PartitionResult(0, i, 0) for i in range(20)]
            want = [b"v%d" % i for i in range(20)]
            await wait_for("replicated", lambda: all(
                values(node.hosts[g].log) == want for node in nodes.values()))
            for node in nodes.values():
                p = node.messenger.probe  # type: ignore[union-attr]
                assert p.bad_frames == 0 and p.frames_in > 0
            # Idle now: the leaders' heartbeats flow (none while appends carried the commit).
            await wait_for("heartbeats", lambda: sum(
                node.messenger.probe.beats_in  # type: ignore[union-attr]
                for node in nodes.values()) > 0)

            loop = asyncio.get_running_loop()
            await first.stop()
            started = loop.time()
            await wait_for("a new leader", lambda: len(leaders(g)) == 1)
            took = loop.time() - started
            second = nodes[leaders(g)[0]]
            assert second is not first and took < DEADLINE_S
            await wait_for("the new leader's high watermark",
                           lambda: second.hosts[g].part.high_watermark == 20)
            assert second.hosts[g].append(Append(batch(b"after"), -1, None), "a") is None
            await wait_for("ack after failover", lambda: "a" in second.answers)
            assert second.answers["a"] == PartitionResult(0, 20, 0)
        finally:
            for node in nodes.values():
                if not node.down:
                    await node.stop()

    asyncio.run(asyncio.wait_for(main(), 90))


def test_heartbeats_of_every_group_to_one_peer_share_a_frame(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [RpcServer("127.0.0.1", 0), RpcServer("127.0.0.1", 0)]
        for s in servers:
            await s.start()
        peer = servers[1].address
        a = RaftMessenger(NodeId(1), loop, servers[0], lambda g, n: peer, heartbeat_s=0.05)
        b = RaftMessenger(NodeId(2), loop, servers[1], lambda g, n: None, heartbeat_s=0.05)
        got: list[tuple[int, Message]] = []
        for g in (GroupId(1), GroupId(2), GroupId(3)):
            b.register(g, lambda m, g=g: got.append((int(g), m)))
        try:
            for g in (GroupId(1), GroupId(2), GroupId(3)):
                a.send(g, [Message(MessageType.HEARTBEAT, NodeId(1), NodeId(2), Term(4),
                                   commit=Index(int(g)))])
            await wait_for("three beats", lambda: len(got) == 3)
            assert b.probe.frames_in == 1 and a.probe.heartbeat_frames_out == 1
            assert sorted((g, int(m.commit)) for g, m in got) == [(1, 1), (2, 2), (3, 3)]
        finally:
            await a.close()
            await b.close()
            for s in servers:
                await s.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_turn_of_appends_past_one_frame_leaves_in_several(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [RpcServer("127.0.0.1", 0), RpcServer("127.0.0.1", 0)]
        for s in servers:
            await s.start()
        peer = servers[1].address
        a = RaftMessenger(NodeId(1), loop, servers[0], lambda g, n: peer)
        b = RaftMessenger(NodeId(2), loop, servers[1], lambda g, n: None)
        got: list[Message] = []
        b.register(GroupId(1), got.append)
        big = bytes(batch(b"x" * 200_000))  # ~200 KB batches: 40 of them, ~8 MB in one turn
        try:
            a.send(GroupId(1), [
                Message(MessageType.APPEND, NodeId(1), NodeId(2), Term(1), Index(i), Term(1),
                        (Entry(Term(1), Index(i + 1), EntryKind.DATA, big),), Index(0))
                for i in range(40)])
            await wait_for("40 appends", lambda: len(got) == 40)
            assert [int(m.index) for m in got] == list(range(40))
            assert a.probe.frames_out >= 8 and a.probe.dropped_send_failed == 0
            assert all(bytes(m.entries[0].batch) == big for m in got)
        finally:
            await a.close()
            await b.close()
            for s in servers:
                await s.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_frames_keep_their_order_while_and_after_the_connection_opens(tmp_path: Path) -> None:
    """The first frames wait in tasks for the connection; the ones after them queue behind
    them, never overtaking once it is up; then a frame leaves at once, with no task."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [RpcServer("127.0.0.1", 0), RpcServer("127.0.0.1", 0)]
        for s in servers:
            await s.start()
        peer = servers[1].address
        a = RaftMessenger(NodeId(1), loop, servers[0], lambda g, n: peer)
        b = RaftMessenger(NodeId(2), loop, servers[1], lambda g, n: None)
        got: list[Message] = []
        b.register(GroupId(1), got.append)

        def append(i: int) -> Message:
            return Message(MessageType.APPEND, NodeId(1), NodeId(2), Term(1), Index(i), Term(1),
                           (), Index(0))

        try:
            for i in range(40):
                a.send(GroupId(1), [append(i)])
                await asyncio.sleep(0)  # a frame per loop turn, from before the connection on
            await wait_for("40 appends", lambda: len(got) == 40)
            assert [int(m.index) for m in got] == list(range(40))
            assert a.probe.frames_out >= 2 and a.probe.dropped_send_failed == 0
            await wait_for("the queued deliveries ended", lambda: not a._tasks)
            a.send(GroupId(1), [append(40)])
            await asyncio.sleep(0)  # the frame's turn ends: written, no task started for it
            assert not a._tasks
            await wait_for("the 41st append", lambda: len(got) == 41)
        finally:
            await a.close()
            await b.close()
            for s in servers:
                await s.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_peer_that_stops_reading_holds_at_most_a_send_timeout_of_frames(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames to a peer that accepts and never reads fill its connection, then wait in the
    backlog: none waits there longer than SEND_TIMEOUT_S (then it is dropped and counted), so
    the memory they hold stays bounded however long the peer stays stopped."""
    monkeypatch.setattr(raft_messenger, "PEER_INFLIGHT_BYTES", 64 * 1024)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transports: list[asyncio.BaseTransport] = []

        class Deaf(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                transports.append(transport)
                # Not at once: uvloop starts reading after connection_made.
                loop.call_soon(transport.pause_reading)  # type: ignore[attr-defined]

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        listener.bind(("127.0.0.1", 0))
        deaf = await loop.create_server(Deaf, sock=listener)
        addr = deaf.sockets[0].getsockname()[:2]
        server = RpcServer("127.0.0.1", 0)
        await server.start()
        a = RaftMessenger(NodeId(1), loop, server, lambda g, n: addr)
        big = bytes(batch(b"x" * 20_000))
        start, i, longest = loop.time(), 0, 0.0
        try:
            while loop.time() - start < 2.5 * SEND_TIMEOUT_S:
                a.send(GroupId(1), [Message(MessageType.APPEND, NodeId(1), NodeId(2), Term(1),
                                            Index(i), Term(1),
                                            (Entry(Term(1), Index(i + 1), EntryKind.DATA, big),),
                                            Index(0))])
                i += 1
                await asyncio.sleep(0.005)
                backlog = a._backlog.get(addr)
                if backlog:
                    longest = max(longest, loop.time() - backlog[0][2])
            assert a._backlog.get(addr), "the peer never pushed back"
            assert a.probe.dropped_send_failed > 0
            assert SEND_TIMEOUT_S * 0.9 < longest < SEND_TIMEOUT_S + 0.5
        finally:
            await a.close()
            await server.stop()
            deaf.close()
            for t in transports:
                t.abort()  # type: ignore[attr-defined]
            await deaf.wait_closed()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_bad_frames_are_counted_and_dropped(tmp_path: Path) -> None:
    async def main() -> None:
        server = RpcServer("127.0.0.1", 0)
        await server.start()
        loop = asyncio.get_running_loop()
        messenger = RaftMessenger(NodeId(1), loop, server, lambda g, n: None)
        stepped: list[object] = []
        messenger.register(GroupId(1), stepped.append)
        client = RpcClient(*server.address)
        try:
            for junk in (b"", b"\x00\x00\x00\x05", b"\x00\x00\x00\x01\x00\x00\x00\x09abc",
                         b"\x00\x00\x00\x01\x00\x00\x00\x03abc"):
                await client.send(RaftMethod.MESSAGES, junk, timeout=5)
            await client.send(RaftMethod.HEARTBEATS, b"\xff\x00", timeout=5)
            await wait_for("5 frames", lambda: messenger.probe.frames_in == 5)
            assert messenger.probe.bad_frames == 5 and stepped == []
        finally:
            await client.close()
            await messenger.close()
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
