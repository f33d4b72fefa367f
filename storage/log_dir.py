"""The files of one log directory: opening and recovering its segments in order, and the log
start checkpoint (`start_offset`, written with tmp + fdatasync + rename + directory fsync).

Recovery rules: leftover `*.tmp` files and orphan indexes are removed; each segment is opened
trusting its index only when the index matches the file exactly (sealed cleanly), otherwise it
is scanned with CRCs and truncated after its last valid batch (the active segment after a crash
always is, since its index is written only when it is sealed). Segments must continue each
other's offsets; anything after a gap (only possible with on-disk corruption, never after a
crash) is dropped and logged. Every step only removes what is invalid, so an interrupted
recovery converges when rerun. Knows nothing of appends, caches or threads.
"""

from __future__ import annotations

import os
import struct

import crc32c as _crc32c
import structlog

from redshank.storage.file_io import FileLayer
from redshank.storage.segment import Segment, parse_segment_name
from redshank.storage.segment_state import STATE_SUFFIX

__all__ = ["open_segments", "read_start_offset", "write_start_offset"]

_log = structlog.get_logger("redshank.storage")
_START = struct.Struct(">qI")
START_FILE = "start_offset"


def open_segments(
    files: FileLayer, directory: str, index_interval: int, preallocate_step: int
) -> list[Segment]:
    files.makedirs(directory)
    names = files.listdir(directory)
    found: list[tuple[int, int]] = []
    for name in names:
        path = os.path.join(directory, name)
        orphan_index = name.endswith(".index") and name[: -len(".index")] + ".log" not in names
        orphan_state = (name.endswith(STATE_SUFFIX)
                        and name[: -len(STATE_SUFFIX)] + ".log" not in names)
        if name.endswith(".tmp") or orphan_index or orphan_state:
            files.remove(path)
        else:
            parsed = parse_segment_name(name)
            if parsed is not None:
                found.append(parsed)
    found.sort()
    segments: list[Segment] = []
    for base, term in found:
        seg, cut = Segment.open(files, directory, base, term, recover=False,
                                index_interval=index_interval, preallocate_step=preallocate_step)
        if cut:
            _log.info("recovery_truncated", log=directory, segment=base, bytes_cut=cut,
                      next_offset=seg.next_offset)
        segments.append(seg)
    kept, dropped = _contiguous(segments, directory)
    for seg in dropped:
        seg.delete()
    if dropped:
        files.fsync_dir(directory)
    return kept


def _contiguous(
    segments: list[Segment], directory: str
) -> tuple[list[Segment], list[Segment]]:
    """Split into the longest run of segments whose offsets follow each other (an empty one
    only last) and the segments to delete."""
    kept: list[Segment] = []
    dropped: list[Segment] = []
    for i, seg in enumerate(segments):
        if kept and kept[-1].is_empty() and kept[-1].base_offset == seg.base_offset:
            # A crash between deleting an empty segment and creating its successor.
            dropped.append(kept.pop())
        elif kept and (kept[-1].is_empty() or kept[-1].next_offset != seg.base_offset):
            _log.error("recovery_dropped_segments", log=directory, at=seg.base_offset,
                       expected=kept[-1].next_offset)
            dropped.extend(segments[i:])
            break
        kept.append(seg)
    return kept, dropped


def read_start_offset(files: FileLayer, directory: str) -> int:
    """The checkpointed log start, 0 when absent or unreadable."""
    path = os.path.join(directory, START_FILE)
    if not files.exists(path):
        return 0
    handle = files.open(path)
    try:
        blob = handle.pread(_START.size, 0)
    finally:
        handle.close()
    if len(blob) != _START.size:
        return 0
    offset, crc = _START.unpack(blob)
    return offset if _crc32c.crc32c(blob[:8]) == crc else 0


def write_start_offset(files: FileLayer, directory: str, offset: int) -> None:
    path = os.path.join(directory, START_FILE)
    tmp = path + ".tmp"
    raw = struct.pack(">q", offset)
    handle = files.open(tmp, create=True)
    try:
        handle.truncate(0)
        handle.pwrite([raw + struct.pack(">I", _crc32c.crc32c(raw))], 0)
        handle.fdatasync()
    finally:
        handle.close()
    files.rename(tmp, path)
    files.fsync_dir(directory)
