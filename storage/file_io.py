"""The file-layer seam: every byte the storage layer reads or writes goes through `FileLayer`.

`OsFiles` is the real implementation on POSIX calls; `redshank.storage.sim_files.PowerLossFiles`
is a double that keeps only fdatasync'ed bytes so tests can cut the power. Every OS failure
surfaces as `StorageIOError` carrying the errno. `sync_all` makes many handles durable at once
(one syncfs(2) where that is safe). This module knows nothing of segments or batches.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
from collections.abc import Callable, Sequence
from typing import Protocol

from redshank.storage.errors import StorageError, StorageIOError

__all__ = ["Buffer", "FileHandle", "FileLayer", "FlushStep", "OsFile", "OsFiles", "sync_all"]

Buffer = bytes | bytearray | memoryview

# Linux's IOV_MAX: pwritev takes at most this many buffers per call.
_IOV_MAX = 1024


class FileHandle(Protocol):
    """One open file. Positions are explicit so readers and the writer never share a cursor."""

    def pwrite(self, buffers: Sequence[Buffer], pos: int) -> None:
        """Write all buffers back to back at `pos` (a gather write), or raise."""

    def pread(self, size: int, pos: int) -> bytes:
        """Up to `size` bytes at `pos` (fewer only at the end of the file)."""

    def fdatasync(self) -> None: ...

    def fallocate(self, pos: int, length: int) -> None:
        """Reserve blocks for [pos, pos+length), growing the file size to cover them."""

    def truncate(self, size: int) -> None: ...

    def size(self) -> int: ...

    def close(self) -> None: ...


class FileLayer(Protocol):
    """Directory-level operations plus `open`. Paths are plain strings."""

    def open(self, path: str, *, create: bool = False) -> FileHandle: ...

    def listdir(self, path: str) -> list[str]: ...

    def exists(self, path: str) -> bool: ...

    def makedirs(self, path: str) -> None: ...

    def remove(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None:
        """Atomically replace `dst` with `src` (durable only after `fsync_dir`)."""

    def fsync_dir(self, path: str) -> None:
        """Make creations, renames and removals inside directory `path` durable."""

    def drop_cache(self, path: str) -> None:
        """Evict the file's clean pages from the page cache, so the next reads see what the
        disk holds. After a failed fdatasync the kernel marks the unwritten pages clean and
        keeps serving them (fsyncgate): recovery must not read those."""


def _io_error(what: str, exc: OSError) -> StorageIOError:
    return StorageIOError(f"{what}: {exc.strerror or exc}", exc.errno)


_OPENED = itertools.count()


class OsFile:
    """A file descriptor opened read-write; all calls map to one POSIX call (or a retry loop)."""

    __slots__ = ("_dev", "_fd", "opened", "path")

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self.path = path
        self._dev = -1
        # Order of opening (this process): `sync_all` reports errors through the oldest file.
        self.opened = next(_OPENED)

    @property
    def dev(self) -> int:
        """The device (filesystem) the file is on."""
        if self._dev < 0:
            try:
                self._dev = os.fstat(self.fd).st_dev
            except OSError as exc:
                raise _io_error(f"fstat {self.path}", exc) from exc
        return self._dev

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise StorageIOError(f"{self.path}: file is closed", errno.EBADF)
        return self._fd

    def pwrite(self, buffers: Sequence[Buffer], pos: int) -> None:
        fd = self.fd
        pending: list[Buffer] = [b for b in buffers if len(b)]
        i = 0  # first buffer not fully written
        try:
            while i < len(pending):
                written = os.pwritev(fd, pending[i : i + _IOV_MAX], pos)
                pos += written
                # A short write (rare on regular files) resumes inside the first unwritten buffer.
                while written and i < len(pending):
                    head = pending[i]
                    if written >= len(head):
                        written -= len(head)
                        i += 1
                    else:
                        pending[i] = memoryview(head).cast("B")[written:]
                        written = 0
        except OSError as exc:
            raise _io_error(f"pwrite {self.path}", exc) from exc

    def pread(self, size: int, pos: int) -> bytes:
        fd = self.fd
        try:
            data = os.pread(fd, size, pos)
            if len(data) == size or not data:
                return data
            parts = [data]
            got = len(data)
            while got < size:
                more = os.pread(fd, size - got, pos + got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            return b"".join(parts)
        except OSError as exc:
            raise _io_error(f"pread {self.path}", exc) from exc

    def fdatasync(self) -> None:
        fd = self.fd
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise _io_error(f"fdatasync {self.path}", exc) from exc

    def fallocate(self, pos: int, length: int) -> None:
        fd = self.fd
        try:
            os.posix_fallocate(fd, pos, length)
        except OSError as exc:
            raise _io_error(f"fallocate {self.path}", exc) from exc

    def truncate(self, size: int) -> None:
        fd = self.fd
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            raise _io_error(f"truncate {self.path}", exc) from exc

    def size(self) -> int:
        fd = self.fd
        try:
            return os.fstat(fd).st_size
        except OSError as exc:
            raise _io_error(f"fstat {self.path}", exc) from exc

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            except OSError as exc:
                raise _io_error(f"close {self.path}", exc) from exc


class FlushStep:
    """A flush between its write and its sync (`Log.begin_flush`, `KvStore.begin_flush`): the
    target's flush lock is held until `end(outcome)` is called with what became of `handle`'s
    sync (None: durable; `handle` None: nothing to sync), which releases it and returns the
    durable offset or raises."""

    __slots__ = ("_end", "handle")

    def __init__(self, handle: FileHandle | None,
                 end: Callable[[StorageError | None], int]) -> None:
        self.handle = handle
        self._end = end

    def end(self, error: StorageError | None) -> int:
        return self._end(error)

    def sync_and_end(self) -> int:
        """The step on its own: sync `handle`, then `end` with the outcome. The lock is
        released whatever happens: an unexpected exception on the way ends the step as a
        failed sync (the target must then be reopened) and goes on up."""
        try:
            error = sync_all([self.handle])[0] if self.handle is not None else None
        except BaseException:
            with contextlib.suppress(StorageError):
                self.end(StorageError("flush interrupted before its sync"))
            raise
        return self.end(error)


def _syncfs_call() -> Callable[[int], int] | None:
    """libc's syncfs(2), or None where it cannot be trusted: before Linux 5.8 it returned 0
    even when writeback had failed (no per-filesystem error sequence yet)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return None
    if os.uname().sysname != "Linux" or (major, minor) < (5, 8):
        return None
    fn = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    if fn is None:
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn  # type: ignore[no-any-return]


# A ctypes foreign call: the GIL is released while it runs.
_syncfs: Callable[[int], int] | None = _syncfs_call()


def sync_all(handles: Sequence[FileHandle]) -> list[StorageError | None]:
    """Make what was written to every one of `handles` durable: one outcome per handle (None:
    durable). Two or more real files on one filesystem get one syncfs(2) (one writeback pass
    and one device cache flush for all of them, and one GIL round trip instead of one per file);
    its failure fails every one of them, since it cannot say whose pages were lost. Anything
    else (one file, the simulated layer, several filesystems, no usable syncfs) gets an
    fdatasync per handle. A wrapping handle (the fault-injecting layer) joins a shared syncfs
    only when its `group_sync_file()` returns the real file under it, and its
    `before_group_sync()` runs first: what it raises fails the whole group."""
    out: list[StorageError | None] = [None] * len(handles)
    alone: list[int] = list(range(len(handles)))
    if len(handles) >= 2 and _syncfs is not None:
        groups: dict[int, list[tuple[int, OsFile]]] = {}
        alone = []
        try:
            for i, handle in enumerate(handles):
                real = _group_file(handle)
                if real is None:
                    alone.append(i)
                else:
                    groups.setdefault(real.dev, []).append((i, real))
        except StorageError as exc:
            return [exc] * len(handles)
        for members in groups.values():
            if len(members) == 1:
                alone.append(members[0][0])
                continue
            error = _syncfs_group([handles[i] for i, _ in members], [f for _, f in members])
            for i, _ in members:
                out[i] = error
    for i in alone:
        try:
            handles[i].fdatasync()
        except StorageError as exc:
            out[i] = exc
    return out


def _group_file(handle: FileHandle) -> OsFile | None:
    if type(handle) is OsFile:
        return handle
    join: Callable[[], OsFile | None] | None = getattr(handle, "group_sync_file", None)
    return join() if join is not None else None


def _syncfs_group(handles: list[FileHandle], files: list[OsFile]) -> StorageError | None:
    """One syncfs for `files` (one filesystem) -> the outcome for all of them."""
    assert _syncfs is not None
    try:
        for handle in handles:
            before: Callable[[], None] | None = getattr(handle, "before_group_sync", None)
            if before is not None:
                before()
        # syncfs reports a writeback error on the filesystem that came after the file it is
        # called on was opened (Linux >= 5.8 samples the error sequence at open). The oldest
        # file was opened before anything any of these files holds was written, so through it
        # every error that could touch their data is reported.
        fd = min(files, key=lambda f: f.opened).fd
    except StorageError as exc:
        return exc
    while _syncfs(fd) != 0:
        err = ctypes.get_errno()
        if err != errno.EINTR:
            return StorageIOError(f"syncfs for {', '.join(f.path for f in files)}: "
                                  f"{os.strerror(err)}", err)
    return None


class OsFiles:
    """The real file layer."""

    def open(self, path: str, *, create: bool = False) -> OsFile:
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        try:
            return OsFile(os.open(path, flags, 0o644), path)
        except OSError as exc:
            raise _io_error(f"open {path}", exc) from exc

    def listdir(self, path: str) -> list[str]:
        try:
            return os.listdir(path)
        except OSError as exc:
            raise _io_error(f"listdir {path}", exc) from exc

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def makedirs(self, path: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise _io_error(f"makedirs {path}", exc) from exc

    def remove(self, path: str) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _io_error(f"remove {path}", exc) from exc

    def rename(self, src: str, dst: str) -> None:
        try:
            os.replace(src, dst)
        except OSError as exc:
            raise _io_error(f"rename {src}", exc) from exc

    def fsync_dir(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _io_error(f"fsync dir {path}", exc) from exc

    def drop_cache(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _io_error(f"drop cache {path}", exc) from exc
