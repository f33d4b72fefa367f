"""Which `__consumer_offsets` partition coordinates a group: Kafka's layout, bit for bit.

Kafka picks `Utils.abs(groupId.hashCode()) % partitionCount` (Utils.abs maps Integer.MIN_VALUE to
0), with Java's String.hashCode over UTF-16 code units. Matching it keeps a group on the same
partition as in Kafka, so tools and migrated `__consumer_offsets` data agree with us.

Must not know: the coordinator, where partitions live.
"""

from __future__ import annotations

__all__ = ["java_string_hash", "partition_for"]

_INT_MIN = -(2**31)


def java_string_hash(s: str) -> int:
    """Java's `String.hashCode()`: s[0]*31^(n-1) + ... + s[n-1] over UTF-16 units, as an int32."""
    raw = s.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(raw), 2):
        h = (31 * h + (raw[i] << 8 | raw[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, got {num_partitions}")
    h = java_string_hash(group_id)
    return (0 if h == _INT_MIN else abs(h)) % num_partitions
