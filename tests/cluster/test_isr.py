"""isr.in_sync: the leader, and the followers heard from recently whose match is near the end."""

from __future__ import annotations

import pytest

from redshank.cluster.kafka.isr import MAX_AGE_S, MAX_LAG_ENTRIES, in_sync


def test_caught_up_and_heard_followers_are_in_sync() -> None:
    assert in_sync(1, 50, {2: 50, 3: 50}, {2: 0.1, 3: 0.2}) == (1, 2, 3)


@pytest.mark.parametrize(("match", "age", "inside"), [
    (50, MAX_AGE_S, True),
    (50, MAX_AGE_S + 0.01, False),  # silent too long (a dead node)
    (50 - MAX_LAG_ENTRIES, 0.1, True),
    (49 - MAX_LAG_ENTRIES, 0.1, False),  # too far behind (catching up)
    (50, None, False),  # never heard from since this leader started
])
def test_a_follower_outside_either_bound_is_out(match: int, age: float | None,
                                                inside: bool) -> None:
    ages = {} if age is None else {2: age}
    assert in_sync(1, 50, {2: match}, ages) == ((1, 2) if inside else (1,))


def test_the_leader_alone_is_in_sync() -> None:
    assert in_sync(3, 10, {}, {}) == (3,)
