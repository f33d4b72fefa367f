"""The controller (Raft group 0) hosted on real event-loop objects over real RPC on 127.0.0.1:
three hosts elect a leader, apply proposals made from any node identically, fail over when the
leader stops, catch a restarted node up, decide racing proposals by log order, and recover from
disk. One loop per test, every wait bounded, nothing left running."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from redshank.actors.controller_host import ControllerHost, ControllerHostConfig, ProposeFailed
from redshank.actors.rpc import RpcServer
from redshank.cluster.controller import (
    Applied,
    BootstrapCluster,
    CreateTopic,
    NetAddress,
    RegisterNode,
    place,
)
from redshank.cluster.raft.types import NodeId
from redshank.protocol.error_codes import ErrorCode
from redshank.storage import PowerLossFiles

CLUSTER = uuid.UUID(int=0xC1)
# Ticks of 50 ms: an election after 0.5-1 s of silence (10-20 ticks).
CFG = ControllerHostConfig(tick_s=0.05, election_ticks=10, propose_timeout_s=10.0,
                           resend_after_s=1.0, snapshot_every=0)


def _run(main: Callable[[], Coroutine[Any, Any, None]], limit: float = 25.0) -> None:
    """Run `main` on a fresh loop, bounded in time; fail if it leaves a task behind."""

    async def bounded() -> None:
        async with asyncio.timeout(limit):
            await main()
        await asyncio.sleep(0)
        leaked = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
        assert leaked == set(), leaked

    asyncio.run(bounded())


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def node(n: int) -> RegisterNode:
    return RegisterNode(NodeId(n), uuid.UUID(int=n), NetAddress("127.0.0.1", 33145 + n),
                        NetAddress("127.0.0.1", 9092 + n), 2)


class Cluster:
    """Three (or n) controller hosts, each with its own RpcServer, directories under tmp."""

    def __init__(self, tmp: Path, n: int = 3, config: ControllerHostConfig = CFG,
                 files: dict[NodeId, PowerLossFiles] | None = None) -> None:
        self.tmp = tmp
        self.files = files
        self.ids = [NodeId(i) for i in range(1, n + 1)]
        self.config = config
        self.ports: dict[NodeId, int] = {}
        self.servers: dict[NodeId, RpcServer] = {}
        self.hosts: dict[NodeId, ControllerHost] = {}

    async def start(self) -> None:
        for i in self.ids:
            server = RpcServer("127.0.0.1", 0)
            await server.start()
            self.servers[i] = server
            self.ports[i] = server.address[1]
        for i in self.ids:
            await self._host(i)

    async def _host(self, i: NodeId) -> ControllerHost:
        addresses = {j: ("127.0.0.1", self.ports[j]) for j in self.ids}
        host = ControllerHost(i, str(self.tmp / f"n{i}"), frozenset(self.ids), addresses,
                              self.servers[i], config=self.config, seed=int(i),
                              files=None if self.files is None else self.files[i])
        await host.start()
        self.hosts[i] = host
        return host

    async def stop(self, i: NodeId) -> None:
        """The node goes away: its RPC server, then its host (files closed cleanly)."""
        await self.servers.pop(i).stop()
        await self.hosts.pop(i).close()

    async def power_loss(self) -> None:
        """Every node crashes (servers first, so no more traffic), and only what each had
        fsynced survives, the first unsynced write of each file possibly torn."""
        assert self.files is not None
        for i in list(self.hosts):
            await self.servers.pop(i).stop()
        for i in list(self.hosts):
            await self.hosts.pop(i).close(clean=False)
        for i in self.ids:
            self.files[i] = self.files[i].power_loss(torn=True, seed=int(i))

    async def restart(self, i: NodeId) -> ControllerHost:
        server = RpcServer("127.0.0.1", self.ports[i])  # the address its peers know
        await server.start()
        self.servers[i] = server
        return await self._host(i)

    async def close(self) -> None:
        for i in list(self.hosts):
            await self.stop(i)

    async def leader(self, timeout: float = 5.0) -> ControllerHost:
        """Once exactly one running host leads and every running host knows it."""
        def agreed() -> bool:
            leaders = [h for h in self.hosts.values() if h.is_leader]
            return len(leaders) == 1 and all(h.leader == leaders[0].node
                                             for h in self.hosts.values())
        await _until(agreed, timeout)
        return next(h for h in self.hosts.values() if h.is_leader)

    def follower(self) -> ControllerHost:
        return next(h for h in self.hosts.values() if not h.is_leader)

    async def all_applied(self, count: int, timeout: float = 5.0) -> None:
        await asyncio.gather(*(h.wait_applied(count, timeout) for h in self.hosts.values()))

    def snapshots(self) -> set[bytes]:
        return {h.stm.snapshot() for h in self.hosts.values()}

    async def identical(self, timeout: float = 5.0) -> None:
        """Every running host reaches the same state (snapshot bytes: the commands applied
        and what they built). Waited for, not asserted at once: a proposal resent under load
        may still be applying on one of them."""
        await _until(lambda: len(self.snapshots()) == 1, timeout)


def create(host: ControllerHost, name: str, partitions: int = 3, rf: int = 3,
           topic_id: uuid.UUID | None = None) -> CreateTopic:
    stm = host.stm
    assignments = place(partitions, rf, stm.members.active_cores(),
                        (a for _tp, a in stm.topics.assignments()))
    assert isinstance(assignments, tuple)
    return CreateTopic(name, topic_id or uuid.uuid4(), partitions, rf, (), assignments)


async def bootstrap(c: Cluster, via: ControllerHost) -> int:
    """BootstrapCluster + RegisterNode x3 proposed from `via`; the number of commands."""
    ok = await via.propose(BootstrapCluster(CLUSTER, (node(1),)))
    assert ok.ok, ok
    for i in c.ids:
        got = await via.propose(node(i))
        assert got.ok, got
    return 1 + len(c.ids)


def test_proposals_from_a_follower_are_applied_identically_on_all(tmp_path: Path) -> None:
    async def main() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start()
            leader = await c.leader()
            follower = c.follower()
            count = await bootstrap(c, follower)
            result = await follower.propose(create(follower, "orders"))
            assert result == Applied()
            await c.all_applied(count + 1)
            await c.identical()
            for h in c.hosts.values():
                assert h.stm.cluster_uuid == CLUSTER
                assert sorted(n.node_id for n in h.stm.members) == c.ids
                assert h.stm.topics.get("orders") is not None
            # The leader proposes too, and answers from its own apply.
            again = await leader.propose(create(leader, "orders"))
            assert again.error_code == ErrorCode.TOPIC_ALREADY_EXISTS
            await c.all_applied(count + 2)
            await c.identical()
        finally:
            await c.close()

    _run(main)


def test_leader_stops_others_elect_and_continue_then_it_catches_up(tmp_path: Path) -> None:
    async def main() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start()
            leader = await c.leader()
            count = await bootstrap(c, leader)
            await c.all_applied(count)
            gone = leader.node
            t0 = time.perf_counter()
            await c.stop(gone)
            new = await c.leader(timeout=5.0)
            elapsed = time.perf_counter() - t0
            print(f"failover: new leader {new.node} after {elapsed:.3f} s")
            assert new.node != gone
            survivor = c.follower()
            t1 = time.perf_counter()
            assert (await survivor.propose(create(survivor, "after", rf=2))).ok
            print(f"first proposal after failover applied in {time.perf_counter() - t1:.3f} s")
            count += 1
            await c.all_applied(count)
            back = await c.restart(gone)
            await back.wait_applied(count, timeout=5.0)
            await c.identical()
            assert back.stm.topics.get("after") is not None
            # It takes part again: a proposal from it is applied everywhere.
            assert (await back.propose(create(back, "back", rf=3))).ok
            await c.all_applied(count + 1)
            await c.identical()
        finally:
            await c.close()

    _run(main)


def test_racing_creates_of_one_name_exactly_one_wins(tmp_path: Path) -> None:
    async def main() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start()
            leader = await c.leader()
            count = await bootstrap(c, leader)
            await c.all_applied(count)
            a, b = (c.hosts[i] for i in c.ids[:2])
            ra, rb = await asyncio.gather(a.propose(create(a, "race")),
                                          b.propose(create(b, "race")))
            assert sorted([ra.error_code, rb.error_code]) == [
                ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS]
            await c.all_applied(count + 2)
            await c.identical()
            winner = a if ra.ok else b
            topic = winner.stm.topics.get("race")
            assert topic is not None
        finally:
            await c.close()

    _run(main)


def test_all_restart_from_disk_with_identical_state(tmp_path: Path) -> None:
    config = ControllerHostConfig(tick_s=0.05, election_ticks=10, resend_after_s=1.0,
                                  snapshot_every=2)

    async def main() -> None:
        c = Cluster(tmp_path, config=config)
        try:
            await c.start()
            leader = await c.leader()
            count = await bootstrap(c, c.follower())
            for name in ("a", "b", "c"):
                assert (await leader.propose(create(leader, name))).ok
            count += 3
            await c.all_applied(count)
            await c.identical()
            before = c.snapshots()
            for i in c.ids:
                await c.stop(i)
            for i in c.ids:
                host = await c.restart(i)
                # Restored from its last snapshot (every 2 commands), before any election.
                assert host.stm.last_applied >= count - 1
            await c.leader()
            await c.all_applied(count)
            await _until(lambda: c.snapshots() == before)
            follower = c.follower()
            assert (await follower.propose(create(follower, "d"))).ok
            await c.all_applied(count + 1)
            await c.identical()
        finally:
            await c.close()

    _run(main)


def test_a_proposal_the_stopped_leader_never_replicated_is_sent_again(tmp_path: Path) -> None:
    async def main() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start()
            leader = await c.leader()
            count = await bootstrap(c, leader)
            await c.all_applied(count)
            # The leader goes deaf-mute towards its peers: it still takes the forwarded
            # proposal (the RPC server answers), but its append reaches nobody.
            await leader.peers.close()
            follower = c.follower()
            log_end = leader.storage[0].dirty_offset
            pending = asyncio.ensure_future(follower.propose(create(follower, "lost", rf=2)))
            await _until(lambda: leader.storage[0].dirty_offset > log_end)
            gone = leader.node
            await c.stop(gone)
            result = await asyncio.wait_for(pending, 10.0)
            assert result.ok, result
            count += 1
            await c.all_applied(count)
            # The old leader comes back with the uncommitted batch at that offset: the new
            # leader's log replaces it, and it reaches the same state.
            back = await c.restart(gone)
            await back.wait_applied(count, timeout=5.0)
            await _until(lambda: back.storage[0].dirty_offset
                         == next(iter(c.hosts.values())).storage[0].dirty_offset)
            await c.identical()
            assert back.stm.topics.get("lost") is not None
        finally:
            await c.close()

    _run(main)


def test_power_loss_of_every_node_keeps_every_answered_proposal(tmp_path: Path) -> None:
    async def main() -> None:
        c = Cluster(tmp_path, files={i: PowerLossFiles() for i in (1, 2, 3)})
        try:
            await c.start()
            leader = await c.leader()
            count = await bootstrap(c, c.follower())
            answered = []
            for k in range(5):
                h = c.hosts[c.ids[k % 3]]
                assert (await h.propose(create(h, f"t{k}"))).ok
                answered.append(f"t{k}")
            count += 5
            # More proposals in flight when the power goes: answered or failed, never both.
            end = leader.storage[0].dirty_offset
            inflight = [asyncio.ensure_future(h.propose(create(h, f"x{h.node}")))
                        for h in c.hosts.values()]
            await _until(lambda: leader.storage[0].dirty_offset > end)
            await c.power_loss()
            outcomes = await asyncio.gather(*inflight, return_exceptions=True)
            for o in outcomes:
                assert isinstance(o, (Applied, ProposeFailed)), o
            for i in c.ids:
                await c.restart(i)
            await c.leader()
            await c.all_applied(count)
            await c.identical()
            stm = c.hosts[c.ids[0]].stm
            for name in answered:
                assert stm.topics.get(name) is not None, name
            for h_id, o in zip((1, 2, 3), outcomes, strict=True):
                if isinstance(o, Applied) and o.ok:
                    assert stm.topics.get(f"x{h_id}") is not None
            # The cluster goes on.
            follower = c.follower()
            assert (await follower.propose(create(follower, "after"))).ok
            await c.identical()
        finally:
            await c.close()

    _run(main)


def test_a_restarted_follower_knows_what_to_replay_and_the_leaders_count(tmp_path: Path) -> None:
    """`replay_end`: the commands its log held at start (0 at a first start); `leader_applied`:
    the leader's committed count, asked over RPC (None on the leader itself), which is its
    `committed_count` (None on a follower)."""

    async def main() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start()
            assert all(h.replay_end == 0 and h.replayed for h in c.hosts.values())
            leader = await c.leader()
            assert await leader.leader_applied(1.0) is None
            count = await bootstrap(c, leader)
            await c.all_applied(count)
            follower = c.follower()
            await c.stop(follower.node)
            assert (await leader.propose(create(leader, "missed"))).ok  # while it is down
            host = await c.restart(follower.node)
            assert host.replay_end == count
            leader = await c.leader()
            assert await host.leader_applied(1.0) == count + 1
            assert leader.committed_count == count + 1 and host.committed_count is None
            await host.wait_applied(count + 1, 5.0)
            assert host.replayed and host.stm.topics.get("missed") is not None
        finally:
            await c.close()

    _run(main)
