"""Configuration changes as a pure function (etcd-raft's `confchange/`): from the configuration
in force and the wanted voters and learners, the configuration to append, or why not.

Rules: voters change only through a joint configuration C_old,new (thesis section 4.3), never
from a joint one; a new voter must already be a caught-up learner; a node is a voter or a
learner, not both; a voter is not demoted straight to learner. Must not know logs or messages.
"""

from __future__ import annotations

from collections.abc import Callable

from redshank.cluster.raft.types import Config, NodeId, ProposeError


def plan(current: Config, voters: frozenset[NodeId], learners: frozenset[NodeId],
         caught_up: Callable[[NodeId], bool]) -> Config | ProposeError:
    if current.joint:
        return ProposeError.CONFIG_IN_PROGRESS
    if not voters or voters & learners or learners & current.voters:
        return ProposeError.INVALID_CONFIG
    for n in sorted(voters - current.voters):
        if n not in current.learners:
            return ProposeError.INVALID_CONFIG
        if not caught_up(n):
            return ProposeError.LEARNER_NOT_CAUGHT_UP
    if voters == current.voters:
        return Config(voters=voters, learners=learners)
    return Config(voters=voters, outgoing=current.voters, learners=learners)


def leave_joint(current: Config) -> Config:
    """The configuration that ends a joint phase: C_new with its learners."""
    assert current.joint
    return Config(voters=current.voters, learners=current.learners)
