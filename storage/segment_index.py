"""The sparse index of one segment: offset -> file position and timestamp -> position.

One entry about every `interval` bytes of batches (32 KiB by default), always one for the first
batch. Entries live in three compact `array('q')` columns searched with `bisect`, so a lookup is
O(log n) and 1M entries cost 24 MB. Each entry holds the batch's offset relative to the segment
base, its file position, and the running maximum timestamp of the batches *before* it; that
running maximum never decreases, so it can be bisected even though batch timestamps are not
monotonic (Kafka's time index makes the same trade).

The on-disk form is rebuildable from the segment: a CRC'd blob written when a segment is sealed;
anything that does not check out is ignored and the index rebuilt. Knows nothing of files.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right

import crc32c as _crc32c

__all__ = ["DEFAULT_INDEX_INTERVAL", "SegmentIndex"]

DEFAULT_INDEX_INTERVAL = 32 * 1024

_MAGIC = b"RSIX"
_VERSION = 1
# magic, version, interval, base offset, data size, next offset, max timestamp, bytes since last
# entry, entry count
_HEAD = struct.Struct("<4sHIqqqqqI")
_CRC = struct.Struct("<I")


class SegmentIndex:
    __slots__ = (
        "_bytes_since", "_pos", "_rel", "_ts", "base_offset", "interval", "max_timestamp",
        "next_offset",
    )

    def __init__(self, base_offset: int, interval: int = DEFAULT_INDEX_INTERVAL) -> None:
        self.base_offset = base_offset
        self.interval = interval
        self._rel = array("q")
        self._pos = array("q")
        self._ts = array("q")
        # Running max timestamp of all batches added (-1 when none, as Kafka's "no timestamp").
        self.max_timestamp = -1
        # One past the last offset of the last batch added.
        self.next_offset = base_offset
        self._bytes_since = 0

    def __len__(self) -> int:
        return len(self._rel)

    def add(
        self, base_offset: int, last_offset: int, position: int, size: int, max_timestamp: int
    ) -> None:
        """Account for the batch at `position`; called for every batch, in file order."""
        self.next_offset = last_offset + 1
        if not self._rel or self._bytes_since >= self.interval:
            # `_rel` last: a reader that finds an entry through it sees its other columns.
            self._pos.append(position)
            self._ts.append(self.max_timestamp)
            self._rel.append(base_offset - self.base_offset)
            self._bytes_since = 0
        self._bytes_since += size
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last indexed batch starting at or before `offset`."""
        i = bisect_right(self._rel, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._rel[i], self._pos[i]

    def lookup_timestamp(self, timestamp: int) -> tuple[int, int]:
        """(offset, position) to scan from for the first batch with max timestamp >= `timestamp`:
        every batch before it has a smaller timestamp."""
        i = bisect_left(self._ts, timestamp) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._rel[i], self._pos[i]

    def truncate(self, position: int) -> int:
        """Forget batches at or after `position`. Returns the position from which the caller must
        re-`add` the surviving batches up to `position` (the index keeps only whole entries)."""
        i = bisect_left(self._pos, position) - 1
        if i < 0:
            del self._rel[:], self._pos[:], self._ts[:]
            self.max_timestamp = -1
            self.next_offset = self.base_offset
            self._bytes_since = 0
            return 0
        restart = self._pos[i]
        self.max_timestamp = self._ts[i]
        self.next_offset = self.base_offset + self._rel[i]
        del self._rel[i:], self._pos[i:], self._ts[i:]
        # Force the re-added batch at `restart` to get its entry back.
        self._bytes_since = self.interval
        return restart

    # -- persistence -----------------------------------------------------------------------
    def encode(self, data_size: int) -> bytes:
        """The index of a segment holding `data_size` bytes, with a trailing CRC32C."""
        cols = [array("q", c) for c in (self._rel, self._pos, self._ts)]
        if sys.byteorder != "little":
            for c in cols:
                c.byteswap()
        head = _HEAD.pack(
            _MAGIC, _VERSION, self.interval, self.base_offset, data_size, self.next_offset,
            self.max_timestamp, self._bytes_since, len(self._rel),
        )
        body = head + b"".join(c.tobytes() for c in cols)
        return body + _CRC.pack(_crc32c.crc32c(body))

    @classmethod
    def decode(cls, blob: bytes, base_offset: int, data_size: int) -> SegmentIndex | None:
        """The index in `blob` if it is intact and describes exactly this segment, else None."""
        if len(blob) < _HEAD.size + _CRC.size:
            return None
        body, (crc,) = blob[: -_CRC.size], _CRC.unpack_from(blob, len(blob) - _CRC.size)
        if _crc32c.crc32c(body) != crc:
            return None
        magic, version, interval, base, size, next_off, max_ts, since, count = _HEAD.unpack_from(
            body
        )
        if (magic, version, base, size) != (_MAGIC, _VERSION, base_offset, data_size):
            return None
        if len(body) != _HEAD.size + 24 * count or interval <= 0:
            return None
        index = cls(base_offset, interval)
        cols = (index._rel, index._pos, index._ts)
        start = _HEAD.size
        for col in cols:
            col.frombytes(body[start : start + 8 * count])
            if sys.byteorder != "little":
                col.byteswap()
            start += 8 * count
        index.max_timestamp = max_ts
        index.next_offset = next_off
        index._bytes_since = since
        return index
