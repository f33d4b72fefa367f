"""A single-producer/single-consumer ring of frames in POSIX shared memory.

Concern: the bytes layout and the two halves' protocol; nothing about who sends what.

Layout (every counter on its own 64-byte cache line, stored as ONE aligned 8-byte write through
`memoryview.cast('Q')`: `struct.pack_into` copies byte by byte and a reader could see a torn value):

    line 0  head      bytes ever published by the producer (monotonic)
    line 1  tail      bytes ever released by the consumer (monotonic)
    line 2  sleeping  consumer: "I may block in the loop, ring my doorbell after a publish"
    line 3  waiting   producer: "the ring was full, ring my doorbell after a release"
    data    capacity bytes (a power of two) of frames, 8-byte aligned:
            u64 header = length | sequence << 32, then the payload, padded to 8 bytes.
            A frame never splits across the end: a header with length PAD means "skip to 0".
            A length with bit 31 (BATCH) set is a batch frame: small frames staged in one loop
            turn (`stage`), each as <u32 length> payload, unpadded; `read` returns them one by
            one, so a batch is invisible above the ring.

Publishing is one store of `head` after the frames are written (x86 keeps stores in order, and
CPython does the payload copy and the counter store as separate C calls, so neither is reordered).
The sleep/wake handshakes are Dekker-style (store my flag, then load the other side's counter),
which needs a full fence between the store and the load: `full_fence()` takes and releases a
process-local lock, whose atomic read-modify-write instructions are full barriers on x86.
"""

from __future__ import annotations

import mmap
import struct
import threading
from typing import Final

import posix_ipc

__all__ = [
    "FRAME_OVERHEAD",
    "HEADER_SIZE",
    "SMALL_FRAME",
    "RingConsumer",
    "RingCorruptError",
    "RingProducer",
    "RingSegment",
    "full_fence",
]

HEADER_SIZE: Final = 256
FRAME_OVERHEAD: Final = 8
_HEAD, _TAIL, _SLEEPING, _WAITING = 0, 8, 16, 24  # indices into the header's u64 view
_PAD: Final = 0xFFFFFFFF
_DATA_START: Final = HEADER_SIZE + 8  # offset of a frame's payload in the mapping, past its header
_LEN_MASK: Final = 0xFFFFFFFF
_BATCH: Final = 0x80000000
_SUB: Final = struct.Struct("<I")  # a staged frame's length inside a batch frame
_pack_sub = _SUB.pack
_unpack_sub = _SUB.unpack_from
SMALL_FRAME: Final = 512  # frames up to this size are worth merging into a batch frame

_fence_lock = threading.Lock()


def full_fence() -> None:
    """A full memory barrier (store-load ordering) between the caller's shared-memory accesses."""
    _fence_lock.acquire()
    _fence_lock.release()


class RingCorruptError(Exception):
    """A frame header that breaks the protocol (bad length or sequence): a bug, stop the core."""


class RingSegment:
    """One mapped ring segment; create it (the supervisor) or attach to it (a core)."""

    def __init__(self, name: str, capacity: int | None = None, *, create: bool = False) -> None:
        if create:
            if capacity is None or capacity < 4096 or capacity & (capacity - 1):
                raise ValueError("capacity must be a power of two >= 4096")
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=HEADER_SIZE + capacity)
        else:
            shm = posix_ipc.SharedMemory(name)
        try:
            self._mm = mmap.mmap(shm.fd, shm.size)
        finally:
            shm.close_fd()
        self.name = name
        self.capacity = len(self._mm) - HEADER_SIZE
        if self.capacity < 4096 or self.capacity & (self.capacity - 1):
            self._mm.close()
            raise ValueError(f"{name}: not a ring segment")
        whole = memoryview(self._mm)
        self.words = whole[:HEADER_SIZE].cast("Q")
        self.data = whole[HEADER_SIZE:]
        self.data_words = self.data.cast("Q")
        if create:
            # A consumer that has not attached yet is "sleeping": the first publish rings.
            self.words[_SLEEPING] = 1

    @property
    def depth(self) -> int:
        """Bytes published and not yet released."""
        return int(self.words[_HEAD] - self.words[_TAIL])

    @property
    def max_payload(self) -> int:
        return self.capacity // 2 - FRAME_OVERHEAD

    def close(self) -> None:
        for view in (self.data_words, self.data, self.words):
            view.release()
        try:
            self._mm.close()
        except BufferError:  # a consumer still holds an in-place view; the mapping dies with it
            pass

    @staticmethod
    def unlink(name: str) -> None:
        try:
            posix_ipc.unlink_shared_memory(name)
        except posix_ipc.ExistentialError:
            pass


class RingProducer:
    """The writing half. `try_write` stages frames; `publish` makes them visible with one store."""

    def __init__(self, segment: RingSegment) -> None:
        self.segment = segment
        self._words = segment.words
        self._data = segment.data
        self._mm = segment._mm
        self._dwords = segment.data_words
        self._cap = segment.capacity
        self._half = segment.capacity // 2
        self._mask = segment.capacity - 1
        self._head = int(self._words[_HEAD])
        self._published = self._head
        self._tail_cache = int(self._words[_TAIL])
        self._seq = 0 if self._head == 0 else -1  # -1: resume is not supported (new segment)
        if self._seq < 0:
            raise RingCorruptError(f"{segment.name}: a producer must start on a fresh ring")
        self.frames = 0
        self.bytes = 0
        # The open batch: parts (<u32 length>, first, second per staged frame) and its size.
        self._batch: list[bytes | memoryview] = []
        self._batch_size = 0

    def stage(self, first: bytes, second: bytes | bytearray | memoryview = b"") -> int:
        """Add a small frame (`first + second`, at most SMALL_FRAME bytes) to this turn's batch
        frame, written by the next `publish` or `try_write`. Returns the bytes now staged and not
        published (`staged_bytes`), or 0 if the ring could not take the batch with this frame
        (publish, then wait for room as after a refused `try_write`).
        Cheaper than `try_write` per frame: one ring frame, one header, one copy per batch."""
        if type(second) is not bytes:
            second = bytes(second)  # the caller may reuse its buffer before the batch is written
        n = len(first) + len(second)
        size = self._batch_size + 4 + n
        need = (FRAME_OVERHEAD + size + 7) & ~7
        if need > self._half:
            if not self._batch:
                raise ValueError(f"frame of {n} bytes exceeds the ring's max payload")
            self._close_batch()  # as large as a frame may be: write it, open another
            return self.stage(first, second)
        head = self._head
        to_end = self._cap - (head & self._mask)
        total = need if need <= to_end else need + to_end
        if head + total - self._tail_cache > self._cap:
            self._tail_cache = int(self._words[_TAIL])
            if head + total - self._tail_cache > self._cap:
                return 0
        self._batch += (_pack_sub(n), first, second)
        self._batch_size = size
        self.frames += 1
        self.bytes += n
        return head - self._published + size

    def _close_batch(self) -> None:
        """Write the open batch as one frame (its room was checked by `stage`)."""
        parts = self._batch
        self._batch = []
        self._batch_size = 0
        if len(parts) == 3:  # a batch of one: a plain frame
            wrote = self._write(parts[1], parts[2])
        else:
            wrote = self._write(b"".join(parts), b"", _BATCH)
        if not wrote:  # stage() checked the room: only a bug gets here
            raise RingCorruptError(f"{self.segment.name}: a staged batch lost its room")

    def try_write(
        self, first: bytes | memoryview, second: bytes | bytearray | memoryview = b""
    ) -> bool:
        """Stage one frame holding `first + second`; False if the ring has no room (yet)."""
        if self._batch:
            self._close_batch()  # frames keep their order
        if not self._write(first, second):
            return False
        self.frames += 1
        self.bytes += len(first) + len(second)
        return True

    def _write(
        self, first: bytes | memoryview, second: bytes | bytearray | memoryview, flags: int = 0
    ) -> bool:
        n1 = len(first)
        n = n1 + len(second)
        need = (FRAME_OVERHEAD + n + 7) & ~7
        if need > self._cap // 2:
            raise ValueError(f"frame of {n} bytes exceeds the ring's max payload")
        head = self._head
        pos = head & self._mask
        to_end = self._cap - pos
        total = need if need <= to_end else need + to_end
        if head + total - self._tail_cache > self._cap:
            self._tail_cache = int(self._words[_TAIL])
            if head + total - self._tail_cache > self._cap:
                return False
        if need > to_end:
            self._dwords[pos >> 3] = _PAD
            head += to_end
            pos = 0
        self._dwords[pos >> 3] = n | flags | (self._seq << 32)
        start = pos + _DATA_START
        mm = self._mm
        if n == n1:
            mm[start : start + n] = first
        elif n < 512:  # one small copy beats two slice assignments
            mm[start : start + n] = b"".join((first, second))
        else:
            mm[start : start + n1] = first
            mm[start + n1 : start + n] = second
        self._seq = (self._seq + 1) & _LEN_MASK
        self._head = head + need
        return True

    def publish(self) -> bool:
        """Make staged frames visible; True if the consumer asked for a doorbell."""
        if self._batch:
            self._close_batch()
        if self._head == self._published:
            return False
        self._words[_HEAD] = self._head
        self._published = self._head
        full_fence()
        return bool(self._words[_SLEEPING])

    def wait_for_room(self) -> bool:
        """Announce that we wait for room; True if room appeared meanwhile (flag withdrawn)."""
        self._words[_WAITING] = 1
        full_fence()
        tail = int(self._words[_TAIL])
        if tail != self._tail_cache:
            self._tail_cache = tail
            self._words[_WAITING] = 0
            return True
        return False

    @property
    def unpublished(self) -> bool:
        return self._head != self._published or bool(self._batch)

    @property
    def staged_bytes(self) -> int:
        return self._head - self._published + self._batch_size


class RingConsumer:
    """The reading half: `read` returns in-place views of frames, valid until `release`."""

    def __init__(self, segment: RingSegment) -> None:
        self.segment = segment
        self._words = segment.words
        self._data = segment.data
        self._dwords = segment.data_words
        self._cap = segment.capacity
        self._mask = segment.capacity - 1
        self._tail = int(self._words[_TAIL])
        self._read_to = self._tail
        self._seq = 0
        if self._tail != 0:
            raise RingCorruptError(f"{segment.name}: a consumer must start on a fresh ring")
        self.frames = 0
        self.bytes = 0

    def has_data(self) -> bool:
        return int(self._words[_HEAD]) != self._read_to

    def read(self, limit: int = 1 << 30) -> list[memoryview]:
        """Views of up to `limit` frames after the last read; they stay valid until `release()`."""
        head = int(self._words[_HEAD])
        pos_total = self._read_to
        out: list[memoryview] = []
        while pos_total != head and len(out) < limit:
            pos = pos_total & self._mask
            header = int(self._dwords[pos >> 3])
            length = header & _LEN_MASK
            if length == _PAD:
                pos_total += self._cap - pos
                continue
            batch = length & _BATCH
            length &= ~_BATCH
            if header >> 32 != self._seq or length > self._cap // 2:
                raise RingCorruptError(
                    f"{self.segment.name}: frame seq {header >> 32} len {length}, "
                    f"expected seq {self._seq}"
                )
            self._seq = (self._seq + 1) & _LEN_MASK
            start = pos + FRAME_OVERHEAD
            pos_total += (FRAME_OVERHEAD + length + 7) & ~7
            if batch:
                self._split(start, start + length, out)
                continue
            out.append(self._data[start : start + length])
            self.bytes += length
        self.frames += len(out)
        self._read_to = pos_total
        return out

    def _split(self, at: int, end: int, out: list[memoryview]) -> None:
        """Append the frames of the batch frame in data[at:end] to `out`."""
        data = self._data
        while at < end:
            if at + 4 > end:
                raise RingCorruptError(f"{self.segment.name}: batch frame ends inside a length")
            n = _unpack_sub(data, at)[0]
            at += 4
            if at + n > end:
                raise RingCorruptError(f"{self.segment.name}: batched frame runs past its batch")
            out.append(data[at : at + n])
            self.bytes += n
            at += n

    def release(self) -> bool:
        """Give back the space of every frame read; True if the producer asked for a doorbell."""
        if self._read_to == self._tail:
            return False
        self._tail = self._read_to
        self._words[_TAIL] = self._tail
        full_fence()
        if self._words[_WAITING]:
            self._words[_WAITING] = 0
            return True
        return False

    def set_sleeping(self, sleeping: bool) -> None:
        self._words[_SLEEPING] = 1 if sleeping else 0

    @property
    def sleeping(self) -> bool:
        return bool(self._words[_SLEEPING])
