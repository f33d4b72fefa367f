"""Quorum arithmetic: pure functions over voter sets (etcd-raft's `quorum/`).

A majority configuration is one voter set; a joint configuration is two (C_new and C_old, thesis
section 4.3) and needs a majority of each. An empty voter set places no constraint, so a joint
configuration whose outgoing half is empty behaves as a plain majority. Must not know messages,
terms or logs.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping

from redshank.cluster.raft.types import Config, Index, NodeId

# The committed index of an empty voter set: it constrains nothing in a joint minimum.
UNBOUNDED = Index(2**63 - 1)


class VoteResult(enum.IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(n: int) -> int:
    """Smallest number of votes that is a majority of `n` voters."""
    return n // 2 + 1


def committed_index(voters: Collection[NodeId], match: Mapping[NodeId, Index]) -> Index:
    """Largest index that a majority of `voters` has (a voter missing from `match` has 0)."""
    if not voters:
        return UNBOUNDED
    acked = sorted((match.get(v, Index(0)) for v in voters), reverse=True)
    return acked[majority(len(acked)) - 1]


def vote_result(voters: Collection[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer be reached."""
    if not voters:
        return VoteResult.WON
    granted = sum(1 for v in voters if votes.get(v) is True)
    missing = sum(1 for v in voters if v not in votes)
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if granted + missing >= need:
        return VoteResult.PENDING
    return VoteResult.LOST


def joint_committed_index(config: Config, match: Mapping[NodeId, Index]) -> Index:
    return min(committed_index(config.voters, match), committed_index(config.outgoing, match))


def joint_vote_result(config: Config, votes: Mapping[NodeId, bool]) -> VoteResult:
    a = vote_result(config.voters, votes)
    b = vote_result(config.outgoing, votes)
    if a == b:
        return a
    if VoteResult.LOST in (a, b):
        return VoteResult.LOST
    return VoteResult.PENDING


def joint_active(config: Config, active: Collection[NodeId]) -> bool:
    """CheckQuorum: a majority of each half was heard from recently."""
    votes = {n: True for n in active}
    return joint_vote_result(config, votes) == VoteResult.WON
