"""Build magic-2 record batches for storage tests (struct + crc32c, correct lengths and CRC).

Records are encoded for real (varint lengths, zigzag deltas) so sizes are realistic; the storage
layer itself never looks past the batch header. Replace with `redshank.protocol.records` once
the batch builder lands on main.
"""

from __future__ import annotations

import hashlib
import struct

import crc32c

__all__ = ["batch_for_offset", "make_batch", "varint"]


def varint(value: int) -> bytes:
    """Zigzag varint, as Kafka record fields use."""
    v = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _record(offset_delta: int, ts_delta: int, value: bytes) -> bytes:
    body = (
        b"\x00" + varint(ts_delta) + varint(offset_delta) + varint(-1)
        + varint(len(value)) + value + varint(0)
    )
    return varint(len(body)) + body


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
    first = ts[0]
    pairs = enumerate(zip(ts, values, strict=True))
    records = b"".join(_record(i, t - first, v) for i, (t, v) in pairs)
    after_crc = struct.pack(
        ">hiqqqhii", 0, len(values) - 1, first, max(ts), -1, -1, -1, len(values)
    ) + records
    crc = crc32c.crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)
    return bytearray(struct.pack(">qiibI", base_offset, length, epoch, 2, crc) + after_crc)


def batch_for_offset(offset: int, *, record_size: int = 200, max_records: int = 6) -> bytearray:
    """A deterministic batch whose contents depend only on the offset it will get, so a checker
    can rebuild the exact bytes of any batch it finds (crash tests)."""
    count = 1 + offset % max_records
    values = []
    for i in range(count):
        seed = hashlib.sha256(f"{offset}:{i}".encode()).digest()
        values.append((seed * (record_size // len(seed) + 1))[: record_size - (offset + i) % 7])
    return make_batch(values, base_offset=offset, base_timestamp=1_700_000_000_000 + offset)
