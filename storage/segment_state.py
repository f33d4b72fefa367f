"""A sealed segment's state file: opaque bytes its owner computed at the segment's end.

Concern: storing, checking and finding `{base:020d}-{term}.txnindex` next to a segment: one
payload per sealed segment (the partition's transaction index and producer snapshot as of the
segment's end, Kafka's `.txnindex` and `.snapshot` in one), written once with a CRC (tmp file,
fdatasync, rename, directory fsync), read at open, removed with its segment (retention,
DeleteRecords, truncation). A missing or damaged file is no error: its owner rebuilds what it
held from the log. Must not know: what the payload means.

    file = <I crc32c of payload> <I payload length> payload
"""

from __future__ import annotations

import os
import struct

import crc32c as _crc32c

from redshank.storage.file_io import FileLayer

__all__ = ["STATE_SUFFIX", "read_state", "state_path", "write_state"]

STATE_SUFFIX = ".txnindex"
_HEAD = struct.Struct(">II")


def state_path(segment_path: str) -> str:
    """The state file of the segment at `segment_path` (its `.log` file)."""
    return segment_path[: -len(".log")] + STATE_SUFFIX


def write_state(files: FileLayer, segment_path: str, payload: bytes) -> None:
    """Write it durably (replacing any older one). Raises StorageError."""
    path = state_path(segment_path)
    tmp = path + ".tmp"
    handle = files.open(tmp, create=True)
    try:
        handle.truncate(0)
        handle.pwrite([_HEAD.pack(_crc32c.crc32c(payload), len(payload)), payload], 0)
        handle.fdatasync()
    finally:
        handle.close()
    files.rename(tmp, path)
    files.fsync_dir(os.path.dirname(path))


def read_state(files: FileLayer, segment_path: str) -> bytes | None:
    """The payload, or None if there is none or it does not check out."""
    path = state_path(segment_path)
    if not files.exists(path):
        return None
    handle = files.open(path)
    try:
        head = handle.pread(_HEAD.size, 0)
        if len(head) < _HEAD.size:
            return None
        crc, size = _HEAD.unpack(head)
        payload = handle.pread(size, _HEAD.size)
    finally:
        handle.close()
    if len(payload) != size or _crc32c.crc32c(payload) != crc:
        return None
    return payload
