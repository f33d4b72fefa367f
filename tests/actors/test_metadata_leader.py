"""`controller_service.metadata_leader`: the leader Metadata names for a partition in cluster
mode. A replica here that knows no leader (an election, or this node cut off from its group)
never sends the client back here: the leader another replica's node reports, else another
replica (found by tests/integration/test_cluster_cuts.py: librdkafka re-asked the cut-off node
for Metadata, got LEADER_NOT_AVAILABLE each time, and produced nothing for as long as the cut
lasted)."""

from __future__ import annotations

from redshank.actors.controller_service import metadata_leader

REPLICAS = (1, 2, 3)


def test_the_leader_known_here_wins_with_its_in_sync_replicas() -> None:
    assert metadata_leader(REPLICAS, 1, (1, 4, (1, 2)), None) == (1, 4, (1, 2))
    assert metadata_leader(REPLICAS, 1, (2, 4, ()), (2, 4, (2, 3))) == (2, 4, (2, 3))
    # What another node reports for another term says nothing of this leader's in-sync set.
    assert metadata_leader(REPLICAS, 1, (2, 4, ()), (3, 5, (3,))) == (2, 4, None)


def test_no_replica_here_the_reported_leader_else_the_preferred_replica() -> None:
    assert metadata_leader(REPLICAS, 9, None, (2, 3, (2, 3))) == (2, 3, (2, 3))
    assert metadata_leader(REPLICAS, 9, None, None) == (1, -1, None)


def test_a_replica_here_without_a_leader_never_names_this_node() -> None:
    assert metadata_leader(REPLICAS, 1, (0, 3, ()), (2, 4, (2, 3))) == (2, 4, (2, 3))
    # Nobody answers (this node is cut off): another replica, epoch unknown, so the client
    # asks a node that may know instead of this one again.
    assert metadata_leader(REPLICAS, 1, (0, 3, ()), None) == (2, -1, None)
    assert metadata_leader((3, 1), 3, (0, 3, ()), None) == (1, -1, None)


def test_a_single_replica_here_without_a_leader_is_not_available() -> None:
    assert metadata_leader((1,), 1, (0, 1, ()), None) == (-1, -1, None)
