"""confchange.plan: table tests of which configuration changes are allowed and what they become."""

from __future__ import annotations

import pytest

from redshank.cluster.raft.confchange import leave_joint, plan
from redshank.cluster.raft.types import Config, NodeId, ProposeError


def ids(*xs: int) -> frozenset[NodeId]:
    return frozenset(NodeId(x) for x in xs)


CUR = Config(voters=ids(1, 2, 3), learners=ids(4))


@pytest.mark.parametrize(
    ("voters", "learners", "want"),
    [
        # Learner-only changes need no joint phase.
        (ids(1, 2, 3), ids(4, 5), Config(voters=ids(1, 2, 3), learners=ids(4, 5))),
        (ids(1, 2, 3), ids(), Config(voters=ids(1, 2, 3))),
        # Promote a caught-up learner: joint C_new && C_old.
        (ids(1, 2, 3, 4), ids(), Config(voters=ids(1, 2, 3, 4), outgoing=ids(1, 2, 3))),
        # Remove a voter (possibly the leader): joint.
        (ids(2, 3), ids(4), Config(voters=ids(2, 3), outgoing=ids(1, 2, 3), learners=ids(4))),
        # Replace a voter in one joint step.
        (ids(1, 2, 4), ids(), Config(voters=ids(1, 2, 4), outgoing=ids(1, 2, 3))),
        # Invalid: a new voter that is not a learner first, both roles, demotion, no voters.
        (ids(1, 2, 3, 5), ids(4), ProposeError.INVALID_CONFIG),
        (ids(1, 2, 3, 4), ids(4), ProposeError.INVALID_CONFIG),
        (ids(1, 2), ids(3, 4), ProposeError.INVALID_CONFIG),
        (ids(), ids(4), ProposeError.INVALID_CONFIG),
    ],
)
def test_plan(voters: frozenset[NodeId], learners: frozenset[NodeId],
              want: Config | ProposeError) -> None:
    assert plan(CUR, voters, learners, lambda n: True) == want


def test_learner_must_be_caught_up_to_be_promoted() -> None:
    assert plan(CUR, ids(1, 2, 3, 4), ids(), lambda n: False) == \
        ProposeError.LEARNER_NOT_CAUGHT_UP


def test_no_change_from_a_joint_configuration() -> None:
    joint = Config(voters=ids(1, 2, 4), outgoing=ids(1, 2, 3))
    assert plan(joint, ids(1, 2), ids(), lambda n: True) == ProposeError.CONFIG_IN_PROGRESS
    assert leave_joint(joint) == Config(voters=ids(1, 2, 4))
