"""Walk the batches stored in a file region, stopping cleanly at the first one that is not valid.

Recovery uses it with CRC checks to find the valid prefix of a segment (stopping at a bad CRC, a
zeroed header in pre-allocated space, a length past the end, or an offset that does not follow);
lookups use it header-only to step from an index entry to a batch. Reads in large chunks so a
scan costs few syscalls. Knows nothing of segments, indexes or logs.
"""

from __future__ import annotations

from collections.abc import Iterator

from redshank.protocol.errors import CorruptBatchError
from redshank.protocol.record_batch import HEADER_SIZE, BatchHeader, batch_crc, parse_header
from redshank.storage.file_io import FileHandle

__all__ = ["BatchScanner", "StopReason"]

_DEFAULT_CHUNK = 4 * 1024 * 1024


class StopReason:
    """Why a scan ended before its end position (strings, for logs and tests)."""

    BAD_HEADER = "bad_header"  # zeroed pre-allocated space, wrong magic, impossible length
    TRUNCATED = "truncated"  # the batch length runs past the end
    BAD_CRC = "bad_crc"
    OFFSET_GAP = "offset_gap"  # the batch does not continue the offsets before it


class BatchScanner:
    """Iterate (position, header) over [start, end). After iteration `valid_end` is the position
    just past the last good batch and `stop_reason` is None if the whole region was good."""

    def __init__(
        self,
        file: FileHandle,
        start: int,
        end: int,
        *,
        verify_crc: bool,
        expected_offset: int | None = None,
        chunk: int = _DEFAULT_CHUNK,
    ) -> None:
        self._file = file
        self._start = start
        self._end = end
        self._verify = verify_crc
        self._expected = expected_offset
        self._chunk = max(chunk, HEADER_SIZE)
        self.valid_end = start
        self.stop_reason: str | None = None

    def __iter__(self) -> Iterator[tuple[int, BatchHeader]]:
        pos, end = self._start, self._end
        buf = b""
        buf_pos = pos
        while pos < end:
            off = pos - buf_pos
            if off + HEADER_SIZE > len(buf):
                buf, buf_pos, off = self._file.pread(min(self._chunk, end - pos), pos), pos, 0
            if len(buf) - off < HEADER_SIZE:
                self.stop_reason = StopReason.TRUNCATED
                return
            try:
                header = parse_header(buf, off)
            except CorruptBatchError:
                self.stop_reason = StopReason.BAD_HEADER
                return
            if pos + header.size > end:
                self.stop_reason = StopReason.TRUNCATED
                return
            if self._expected is not None and header.base_offset != self._expected:
                self.stop_reason = StopReason.OFFSET_GAP
                return
            if self._verify:
                if off + header.size > len(buf):
                    buf = self._file.pread(max(self._chunk, header.size), pos)
                    buf_pos, off = pos, 0
                    if len(buf) < header.size:
                        self.stop_reason = StopReason.TRUNCATED
                        return
                if batch_crc(buf, off, header) != header.crc:
                    self.stop_reason = StopReason.BAD_CRC
                    return
            yield pos, header
            pos += header.size
            self.valid_end = pos
            if self._expected is not None:
                self._expected = header.last_offset + 1
