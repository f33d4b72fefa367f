"""Build magic-2 record batches for storage tests with the protocol's batch builder.

Records are encoded for real so sizes are realistic; the storage layer itself never looks past
the batch header.
"""

from __future__ import annotations

import hashlib

from redshank.protocol.records import BatchBuilder

__all__ = ["batch_for_offset", "make_batch"]


def make_batch(
    values: list[bytes],
    *,
    base_offset: int = 0,
    base_timestamp: int = 1_700_000_000_000,
    timestamps: list[int] | None = None,
    epoch: int = -1,
) -> bytearray:
    """A batch holding one record per value (timestamps default to base + index)."""
    ts = timestamps or [base_timestamp + i for i in range(len(values))]
    builder = BatchBuilder(base_offset=base_offset, partition_leader_epoch=epoch)
    for t, value in zip(ts, values, strict=True):
        builder.append(value, timestamp=t)
    return bytearray(builder.build())


def batch_for_offset(offset: int, *, record_size: int = 200, max_records: int = 6) -> bytearray:
    """A deterministic batch whose contents depend only on the offset it will get, so a checker
    can rebuild the exact bytes of any batch it finds (crash tests)."""
    count = 1 + offset % max_records
    values = []
    for i in range(count):
        seed = hashlib.sha256(f"{offset}:{i}".encode()).digest()
        values.append((seed * (record_size // len(seed) + 1))[: record_size - (offset + i) % 7])
    return make_batch(values, base_offset=offset, base_timestamp=1_700_000_000_000 + offset)
