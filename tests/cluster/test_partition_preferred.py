"""Leadership balance of a replicated partition (sans-IO, three replicas over real storage, the
synchronous hub of test_partition_replicas): a new group's preferred replica leads without
waiting out an election timeout; a leader elsewhere hands leadership back to the preferred
replica once it has served `balance_ticks` ticks and the preferred one has every entry and
answers; while the preferred replica is away or behind nothing moves; the preferred leader
never transfers away; and a batch acknowledged before the transfer stays where it was."""

from __future__ import annotations

from pathlib import Path

from test_partition_replicas import Hub, batch, stored

from redshank.cluster.partition.api import Append, PartitionResult
from redshank.cluster.raft.types import NodeId, Role


def preferring(hub: Hub, node: int, balance_ticks: int = 5) -> None:
    for r in hub.nodes.values():
        r.part.preferred = NodeId(node)
        r.part.balance_ticks = balance_ticks


def leader(hub: Hub) -> int | None:
    ready = [n for n, r in hub.nodes.items() if n not in hub.cut and r.part.is_ready_leader()]
    return ready[0] if len(ready) == 1 else None


def tick_all(hub: Hub, times: int) -> None:
    for _ in range(times):
        for n, r in hub.nodes.items():
            if n not in hub.cut:
                r.part.tick()
        hub.settle()


def test_a_new_groups_preferred_replica_campaigns_at_once(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    try:
        for n, r in hub.nodes.items():  # the replicas as the host builds them: start() again
            r.part.preferred = NodeId(2)
            if n == 2:
                r.part.start()
        hub.settle()
        assert leader(hub) == 2  # no tick at all: no election timeout waited out
    finally:
        hub.close()


def test_a_preferred_replica_whose_first_campaign_was_lost_campaigns_again_on_its_tick(
        tmp_path: Path) -> None:
    """The replicas of a new topic open on their nodes tens of milliseconds apart: a first
    campaign that reached none of them is made again on the next tick, well before any
    election timeout, and the preferred replica still leads first."""
    hub = Hub(tmp_path)
    try:
        for r in hub.nodes.values():
            r.part.preferred = NodeId(2)
        hub.cut = {1, 3}  # not open yet: the first campaign's requests are lost
        hub.nodes[2].part.start()
        hub.settle()
        hub.cut = set()
        assert leader(hub) is None
        hub.nodes[2].part.tick()  # one tick: no election timeout has passed anywhere
        hub.settle()
        assert leader(hub) == 2
    finally:
        hub.close()


def test_leadership_goes_back_to_the_preferred_replica_once_it_is_caught_up(
        tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    try:
        preferring(hub, 1)
        hub.cut = {1}  # the preferred replica is away: 2 leads, and keeps leading
        hub.elect(2)
        two = hub.nodes[2]
        assert two.part.append(Append(batch([b"a"]), -1, None), "a") is None
        hub.settle()
        assert two.answers["a"] == PartitionResult(0, 0, 0)
        tick_all(hub, 30)
        assert leader(hub) == 2
        hub.cut = set()  # it returns: first caught up, then it leads
        for _ in range(60):
            tick_all(hub, 1)
            if leader(hub) == 1:
                break
        assert leader(hub) == 1
        one = hub.nodes[1]
        assert one.part.term > two.part.term - 1 and two.part.consensus.core.role == Role.FOLLOWER
        assert stored(one.log)[0] == (0, -1, -1)  # the acknowledged batch where it was acked
        assert one.part.append(Append(batch([b"b"]), -1, None), "b") is None
        hub.settle()
        assert one.answers["b"].error_code == 0 and one.answers["b"].base_offset >= 1
        term = one.part.term
        tick_all(hub, 60)  # the preferred leader stays
        assert leader(hub) == 1 and one.part.term == term
    finally:
        hub.close()


def test_no_transfer_before_balance_ticks_nor_without_a_preferred_replica(
        tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    try:
        hub.elect(3)
        tick_all(hub, 40)  # no preferred replica: whoever leads stays
        assert leader(hub) == 3
        preferring(hub, 1, balance_ticks=1000)
        tick_all(hub, 40)  # not yet served long enough
        assert leader(hub) == 3
    finally:
        hub.close()


def test_a_moved_preferred_replica_takes_over_at_the_next_tick(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    try:
        preferring(hub, 1, balance_ticks=1000)
        hub.elect(1)
        tick_all(hub, 5)  # caught up everywhere
        for r in hub.nodes.values():
            r.part.prefer(NodeId(3))  # what the controller's new assignment tells each replica
        for _ in range(10):
            tick_all(hub, 1)
            if leader(hub) == 3:
                break
        assert leader(hub) == 3  # within a few ticks, not after 1000
    finally:
        hub.close()
