"""Placement: distinct nodes, replicas and preferred leaders balanced across nodes and cores,
existing assignments taken into account, deterministic; and `check_assignments`."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import TypeVar

import pytest

from redshank.cluster.controller import (
    Assignment,
    PlacementRefused,
    Replica,
    check_assignments,
    place,
)
from redshank.cluster.kafka.topic_table import CoreId
from redshank.cluster.raft.types import NodeId
from redshank.protocol.error_codes import ErrorCode

T = TypeVar("T")


def nodes_of(*cores: int) -> dict[NodeId, int]:
    return {NodeId(i + 1): c for i, c in enumerate(cores)}


def placed(count: int, rf: int, nodes: Mapping[NodeId, int],
           existing: list[Assignment] | None = None) -> list[Assignment]:
    got = place(count, rf, nodes, existing or [])
    assert isinstance(got, tuple), got
    return list(got)


def spread(counts: Counter[T], keys: list[T]) -> int:
    values = [counts[k] for k in keys]
    return max(values) - min(values)


def check_balance(nodes: Mapping[NodeId, int], all_: list[Assignment]) -> dict[str, int]:
    node_keys = list(nodes)
    core_keys = {n: [Replica(n, CoreId(c)) for c in range(cores)] for n, cores in nodes.items()}
    replicas = Counter(r.node_id for a in all_ for r in a)
    leaders = Counter(a[0].node_id for a in all_)
    core_replicas = Counter(r for a in all_ for r in a)
    core_leaders = Counter(a[0] for a in all_)
    return {
        "node_replicas": spread(replicas, node_keys),
        "node_leaders": spread(leaders, node_keys),
        "core_replicas": max(spread(core_replicas, k) for k in core_keys.values()),
        "core_leaders": max(spread(core_leaders, k) for k in core_keys.values()),
    }


def test_replicas_of_a_partition_are_on_distinct_nodes_and_real_cores() -> None:
    nodes = nodes_of(2, 4, 1, 3, 8)
    for rf in range(1, 6):
        for a in placed(50, rf, nodes):
            assert len(a) == rf and len({r.node_id for r in a}) == rf
            assert all(0 <= r.core < nodes[r.node_id] for r in a)


def test_small_example_round_robins_leaders_and_cores() -> None:
    got = placed(6, 3, nodes_of(2, 2, 2))
    assert [a[0].node_id for a in got] == [1, 2, 3, 1, 2, 3]
    assert Counter(r for a in got for r in a) == {
        Replica(NodeId(n), CoreId(c)): 3 for n in (1, 2, 3) for c in (0, 1)}
    assert Counter(a[0] for a in got) == {
        Replica(NodeId(n), CoreId(c)): 1 for n in (1, 2, 3) for c in (0, 1)}


@pytest.mark.parametrize("rf", [1, 2, 3])
def test_many_topics_stay_balanced_within_one(rf: int) -> None:
    """Seeded runs: topics of random sizes, one replication factor, on random clusters: every
    node and every core of a node within one replica and one preferred leader of the others."""
    rng = random.Random(1000 + rf)
    for _ in range(60):
        nodes = {NodeId(n): rng.randint(1, 8) for n in range(1, rng.randint(rf, 7) + 1)}
        existing: list[Assignment] = []
        for _ in range(rng.randint(1, 30)):
            existing += placed(rng.randint(1, 12), rf, nodes, existing)
            assert max(check_balance(nodes, existing).values()) <= 1, (nodes, existing)


def test_mixed_replication_factors_keep_replicas_balanced() -> None:
    rng = random.Random(77)
    for _ in range(60):
        nodes = {NodeId(n): rng.randint(1, 6) for n in range(1, rng.randint(1, 7) + 1)}
        existing: list[Assignment] = []
        for _ in range(rng.randint(1, 30)):
            existing += placed(rng.randint(1, 12), rng.randint(1, len(nodes)), nodes, existing)
        balance = check_balance(nodes, existing)
        assert balance["node_replicas"] <= 1 and balance["core_replicas"] <= 1, balance
        assert balance["node_leaders"] <= 2 and balance["core_leaders"] <= 2, balance


def test_a_new_node_takes_the_new_replicas_until_it_catches_up() -> None:
    nodes = nodes_of(2, 2, 2)
    existing = placed(30, 3, nodes)  # 30 replicas on each of nodes 1-3
    nodes[NodeId(4)] = 2
    new = placed(10, 2, nodes, existing)
    assert all(NodeId(4) in {r.node_id for r in a} for a in new)
    # Replicas on nodes that are not eligible (decommissioned) are not counted.
    del nodes[NodeId(1)]
    after = placed(9, 3, nodes, existing + new)
    assert all(r.node_id != 1 for a in after for r in a)


def test_existing_assignments_count_towards_core_load() -> None:
    nodes = nodes_of(4)
    busy: list[Assignment] = [(Replica(NodeId(1), CoreId(0)),), (Replica(NodeId(1), CoreId(0)),),
            (Replica(NodeId(1), CoreId(2)),)]
    got = placed(2, 1, nodes, busy)
    assert sorted(a[0].core for a in got) == [1, 3]


def test_deterministic_and_independent_of_mapping_order() -> None:
    rng = random.Random(3)
    nodes = {NodeId(n): rng.randint(1, 4) for n in range(1, 6)}
    existing = placed(17, 2, nodes)
    shuffled = dict(sorted(nodes.items(), key=lambda kv: -kv[0]))
    assert placed(20, 3, nodes, existing) == placed(20, 3, shuffled, list(reversed(existing)))


@pytest.mark.parametrize(("count", "rf", "code"), [
    (3, 0, ErrorCode.INVALID_REPLICATION_FACTOR),
    (3, 4, ErrorCode.INVALID_REPLICATION_FACTOR),
    (-1, 1, ErrorCode.INVALID_PARTITIONS),
])
def test_refusals(count: int, rf: int, code: ErrorCode) -> None:
    got = place(count, rf, nodes_of(1, 1, 1))
    assert isinstance(got, PlacementRefused) and got.error_code == code
    assert place(0, 1, nodes_of(1)) == ()


def _r(n: int, c: int = 0) -> Replica:
    return Replica(NodeId(n), CoreId(c))


@pytest.mark.parametrize(("assignments", "ok"), [
    (((_r(1), _r(2, 1)),), True),
    (((_r(1),),), False),  # too few
    (((_r(1), _r(2), _r(3)),), False),  # too many
    (((_r(1), _r(1, 1)),), False),  # one node twice
    (((_r(1), _r(4)),), False),  # unknown node
    (((_r(1), _r(2, 2)),), False),  # node 2 has two cores
    (((_r(1), _r(2, -1)),), False),
])
def test_check_assignments(assignments: tuple[Assignment, ...], ok: bool) -> None:
    got = check_assignments(assignments, 2, nodes_of(1, 2, 1))
    assert (got is None) == ok
    if got is not None:
        assert got.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT and got.message
