"""In-sync replicas (Metadata's `isr_nodes`) of a Raft-replicated partition, as its leader sees
them.

Concern: Kafka's ISR rule restated over Raft progress (Kafka: `replica.lag.time.max.ms`; Redpanda
derives it from the leader's follower state the same way): the leader is in sync; a follower is
when the leader heard from it within `max_age_s` and its acknowledged match index is at the
leader's last index or at most `max_lag` entries behind it. Raft commits on a majority whatever
this says: it is what clients and operators are told, never a commit rule. Must not know: Raft's
types, actors, clocks (the ages are the caller's).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["MAX_AGE_S", "MAX_LAG_ENTRIES", "in_sync"]

# Raft heartbeats every tick (0.1 s) and answers them: three seconds of silence is thirty missed
# answers, well past a busy loop's hiccup and well under a client's metadata refresh.
MAX_AGE_S = 3.0
# Appends in flight to a healthy follower under load stay far below this; a follower catching up
# after a restart stays out until it is near the end.
MAX_LAG_ENTRIES = 100


def in_sync(leader: int, last_index: int, matches: Mapping[int, int],
            heard_age_s: Mapping[int, float], *, max_age_s: float = MAX_AGE_S,
            max_lag: int = MAX_LAG_ENTRIES) -> tuple[int, ...]:
    """The in-sync replicas (sorted node ids): `leader` and every follower of `matches` (node ->
    match index) heard from within `max_age_s` (`heard_age_s`: node -> seconds since its last
    message; absent: never) whose match is within `max_lag` of `last_index`."""
    out = {leader}
    for node, match in matches.items():
        age = heard_age_s.get(node)
        if age is not None and age <= max_age_s and last_index - match <= max_lag:
            out.add(node)
    return tuple(sorted(out))
