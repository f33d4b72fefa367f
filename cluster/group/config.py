"""The group coordinator's settings (Kafka's `group.*` and `offsets.*` broker configs).

Must not know: where the values come from (CLI flags, broker config files).
"""

from __future__ import annotations

from redshank.protocol.fast_dataclass import dataclass

__all__ = ["GroupConfig"]


@dataclass(frozen=True, slots=True)
class GroupConfig:
    # group.initial.rebalance.delay.ms: an Empty group waits this long for more members before its
    # first generation, extended by each new member up to the rebalance timeout. Kafka's 3 s; a
    # broker that wants a lone consumer served quickly configures less. 0 = complete at once.
    initial_rebalance_delay_ms: int = 3000
    # group.min/max.session.timeout.ms: JoinGroup outside them gets INVALID_SESSION_TIMEOUT.
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    # KIP-394: how long a member that never completed a join may keep a rebalance waiting.
    new_member_join_timeout_ms: int = 300_000
    # group.max.size: joiners beyond it get GROUP_MAX_SIZE_REACHED.
    max_group_size: int = 2**31 - 1
    # offsets.retention.minutes (7 days): how long an Empty group's offsets outlive it.
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    # offsets.retention.check.interval.ms: how often expired offsets and dead groups are purged.
    offsets_retention_check_interval_ms: int = 600_000
    # offset.metadata.max.bytes: longer commit metadata gets OFFSET_METADATA_TOO_LARGE.
    offset_metadata_max_bytes: int = 4096
