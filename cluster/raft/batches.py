"""The one thing Raft reads inside an entry's Kafka record batch, plus helpers for the simulator
and the transcripts.

An entry carries exactly one Kafka record batch, opaque to Raft: the only field read is
lastOffsetDelta, because a DATA entry takes lastOffsetDelta + 1 Kafka offsets (configuration and
no-op entries take none). `batch_of`/`values_of` build and read batches of plain values for the
simulator, the transcripts and tests. Must not know storage or the network.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from redshank.protocol.records import BatchBuilder, iter_records

__all__ = ["Buffer", "batch_of", "batch_span", "values_of"]

Buffer = bytes | bytearray | memoryview
_LAST_OFFSET_DELTA = struct.Struct(">i")
_LAST_OFFSET_DELTA_AT = 23


def batch_span(batch: Buffer) -> int:
    """How many Kafka offsets the batch takes (lastOffsetDelta + 1)."""
    return int(_LAST_OFFSET_DELTA.unpack_from(batch, _LAST_OFFSET_DELTA_AT)[0]) + 1


def batch_of(values: Iterable[bytes]) -> bytes:
    """A Kafka record batch holding `values` (timestamps 0, no keys), for the simulator/tests."""
    builder = BatchBuilder()
    for v in values:
        builder.append(v, timestamp=0)
    return builder.build()


def values_of(batch: Buffer) -> tuple[bytes, ...]:
    """The record values of a batch made by `batch_of` (None values read as b""; no batch, no
    values)."""
    if not len(batch):
        return ()
    return tuple(r.value or b"" for r in iter_records(batch, verify_crc=False))
