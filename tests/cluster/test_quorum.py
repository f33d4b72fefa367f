"""Quorum arithmetic: table tests for majority and joint configurations."""

from __future__ import annotations

import pytest

from redshank.cluster.raft.quorum import (
    UNBOUNDED,
    VoteResult,
    committed_index,
    joint_active,
    joint_committed_index,
    joint_vote_result,
    majority,
    vote_result,
)
from redshank.cluster.raft.types import Config, Index, NodeId


def ids(*xs: int) -> frozenset[NodeId]:
    return frozenset(NodeId(x) for x in xs)


def match(**kw: int) -> dict[NodeId, Index]:
    return {NodeId(int(k[1:])): Index(v) for k, v in kw.items()}


@pytest.mark.parametrize(("n", "want"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_majority(n: int, want: int) -> None:
    assert majority(n) == want


@pytest.mark.parametrize(
    ("voters", "acked", "want"),
    [
        (ids(1), match(n1=5), 5),
        (ids(1, 2, 3), match(n1=5, n2=3, n3=1), 3),
        (ids(1, 2, 3), match(n1=5), 0),  # missing voters count as 0
        (ids(1, 2, 3, 4), match(n1=9, n2=8, n3=2, n4=1), 2),  # needs 3 of 4
        (ids(1, 2, 3, 4, 5), match(n1=9, n2=9, n3=4, n4=1, n5=0), 4),
        (ids(1, 2, 3), match(n1=7, n2=7, n3=7, n9=100), 7),  # non-voters ignored
    ],
)
def test_committed_index(voters: frozenset[NodeId], acked: dict[NodeId, Index], want: int) -> None:
    assert committed_index(voters, acked) == want


def test_empty_voter_set_constrains_nothing() -> None:
    assert committed_index(frozenset(), {}) == UNBOUNDED
    assert vote_result(frozenset(), {}) == VoteResult.WON


@pytest.mark.parametrize(
    ("voters", "votes", "want"),
    [
        (ids(1, 2, 3), {1: True}, VoteResult.PENDING),
        (ids(1, 2, 3), {1: True, 2: True}, VoteResult.WON),
        (ids(1, 2, 3), {1: True, 2: False, 3: False}, VoteResult.LOST),
        (ids(1, 2, 3), {1: False, 2: False}, VoteResult.LOST),
        (ids(1, 2, 3, 4), {1: True, 2: True}, VoteResult.PENDING),
        (ids(1, 2, 3, 4), {1: True, 2: True, 3: False, 4: False}, VoteResult.LOST),
        (ids(1, 2, 3, 4), {1: True, 2: True, 3: True}, VoteResult.WON),
        (ids(1, 2, 3), {1: True, 9: True}, VoteResult.PENDING),  # non-voter's vote ignored
    ],
)
def test_vote_result(voters: frozenset[NodeId], votes: dict[int, bool], want: VoteResult) -> None:
    assert vote_result(voters, {NodeId(k): v for k, v in votes.items()}) == want


@pytest.mark.parametrize(
    ("acked", "want"),
    [
        # C_new = {1,2,4}, C_old = {1,2,3}: the minimum of both halves' majorities.
        (match(n1=9, n2=9, n3=0, n4=0), 9),
        (match(n1=9, n2=5, n3=9, n4=9), 9),
        (match(n1=9, n2=1, n3=1, n4=9), 1),  # new half has 9, old half only 1
        (match(n1=9, n2=1, n3=9, n4=1), 1),  # old half has 9, new half only 1
        (match(n1=3, n2=7, n3=5, n4=6), 5),
    ],
)
def test_joint_committed_index(acked: dict[NodeId, Index], want: int) -> None:
    cfg = Config(voters=ids(1, 2, 4), outgoing=ids(1, 2, 3))
    assert joint_committed_index(cfg, acked) == want


def test_joint_equals_majority_when_not_joint() -> None:
    cfg = Config(voters=ids(1, 2, 3))
    acked = match(n1=4, n2=2, n3=9)
    assert joint_committed_index(cfg, acked) == committed_index(cfg.voters, acked) == 4


@pytest.mark.parametrize(
    ("votes", "want"),
    [
        ({1: True, 2: True}, VoteResult.WON),  # 1,2 are a majority of both halves
        ({1: True, 4: True}, VoteResult.PENDING),  # majority of new, not yet of old
        ({1: True, 4: True, 2: False, 3: False}, VoteResult.LOST),
        ({3: True, 4: True, 1: False}, VoteResult.PENDING),
        ({3: True, 4: True, 1: False, 2: False}, VoteResult.LOST),
    ],
)
def test_joint_vote_result(votes: dict[int, bool], want: VoteResult) -> None:
    cfg = Config(voters=ids(1, 2, 4), outgoing=ids(1, 2, 3))
    assert joint_vote_result(cfg, {NodeId(k): v for k, v in votes.items()}) == want


def test_joint_active_needs_both_halves() -> None:
    cfg = Config(voters=ids(1, 2, 4), outgoing=ids(1, 2, 3))
    assert joint_active(cfg, ids(1, 2))
    assert not joint_active(cfg, ids(1, 4))
    assert not joint_active(cfg, ids(1, 3))
    assert joint_active(cfg, ids(1, 3, 4))
