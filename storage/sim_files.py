"""A file-layer double that models power loss: only fdatasync'ed bytes and fsync'ed directory
entries survive `power_loss()`; errors can be injected per operation.

Model (what ext4/XFS promise, no more): a file's contents and size become durable at its
`fdatasync`; a creation, rename or removal becomes durable at `fsync_dir` of its directory. A
power cut may also tear the first unsynced write of each file (a prefix of it reaches the disk).
Used by storage tests and, later, the deterministic simulator. Knows nothing of segments.
"""

from __future__ import annotations

import errno as errno_mod
import os
import random
from collections.abc import Sequence
from dataclasses import field

from redshank.protocol.fast_dataclass import dataclass
from redshank.storage.errors import StorageIOError
from redshank.storage.file_io import Buffer

__all__ = ["PowerLossFiles", "SimFile"]


@dataclass(slots=True)
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    synced: bytearray = field(default_factory=bytearray)
    # Writes since the last fdatasync, in order: (position, bytes), for torn-write simulation.
    unsynced_writes: list[tuple[int, bytes]] = field(default_factory=list)


class SimFile:
    __slots__ = ("_files", "_inode", "path")

    def __init__(self, files: PowerLossFiles, inode: _Inode, path: str) -> None:
        self._files = files
        self._inode = inode
        self.path = path

    def pwrite(self, buffers: Sequence[Buffer], pos: int) -> None:
        self._files.check("pwrite", self.path)
        data = b"".join(bytes(b) for b in buffers)
        buf = self._inode.data
        if len(buf) < pos:
            buf.extend(bytes(pos - len(buf)))
        buf[pos : pos + len(data)] = data
        self._inode.unsynced_writes.append((pos, data))

    def pread(self, size: int, pos: int) -> bytes:
        self._files.check("pread", self.path)
        return bytes(self._inode.data[pos : pos + size])

    def fdatasync(self) -> None:
        self._files.check("fdatasync", self.path)
        self._inode.synced = bytearray(self._inode.data)
        self._inode.unsynced_writes.clear()
        self._files.syncs += 1

    def fallocate(self, pos: int, length: int) -> None:
        self._files.check("fallocate", self.path)
        end = pos + length
        if len(self._inode.data) < end:
            self._inode.data.extend(bytes(end - len(self._inode.data)))

    def truncate(self, size: int) -> None:
        self._files.check("truncate", self.path)
        data = self._inode.data
        if size < len(data):
            del data[size:]
        else:
            data.extend(bytes(size - len(data)))
        self._inode.unsynced_writes.append((size, b""))

    def size(self) -> int:
        return len(self._inode.data)

    def close(self) -> None:
        pass


class PowerLossFiles:
    """In-memory files with a durable shadow. `power_loss()` returns what a reboot would see."""

    def __init__(self) -> None:
        self._names: dict[str, _Inode] = {}
        self._durable_names: dict[str, _Inode] = {}
        self._dirs: set[str] = set()
        # Injected faults: operation -> (errno, remaining count; -1 = until cleared).
        self._faults: dict[str, tuple[int, int]] = {}
        self.syncs = 0

    # -- fault injection -------------------------------------------------------------------
    def inject(self, op: str, err: int = errno_mod.EIO, count: int = -1) -> None:
        """Make the next `count` calls of `op` (pwrite, fdatasync, fallocate, ...) fail."""
        self._faults[op] = (err, count)

    def clear_faults(self) -> None:
        self._faults.clear()

    def check(self, op: str, path: str) -> None:
        fault = self._faults.get(op)
        if fault is None:
            return
        err, count = fault
        if count == 1:
            del self._faults[op]
        elif count > 1:
            self._faults[op] = (err, count - 1)
        raise StorageIOError(f"{op} {path}: {os.strerror(err)} (injected)", err)

    # -- power loss ------------------------------------------------------------------------
    def power_loss(self, *, torn: bool = False, seed: int = 0) -> PowerLossFiles:
        """A new file layer holding only durable state (plus torn prefixes when `torn`)."""
        rng = random.Random(seed)
        after = PowerLossFiles()
        after._dirs = set(self._dirs)
        fresh: dict[int, _Inode] = {}
        for name, inode in self._durable_names.items():
            copy = fresh.get(id(inode))
            if copy is None:
                content = bytearray(inode.synced)
                if torn and inode.unsynced_writes:
                    pos, data = inode.unsynced_writes[0]
                    cut = rng.randrange(len(data) + 1) if data else 0
                    if len(content) < pos:
                        content.extend(bytes(pos - len(content)))
                    content[pos : pos + cut] = data[:cut]
                copy = _Inode(content, bytearray(content))
                fresh[id(inode)] = copy
            after._names[name] = copy
            after._durable_names[name] = copy
        return after

    def synced_bytes(self, path: str) -> bytes:
        return bytes(self._names[path].synced)

    # -- FileLayer -------------------------------------------------------------------------
    def open(self, path: str, *, create: bool = False) -> SimFile:
        self.check("open", path)
        inode = self._names.get(path)
        if inode is None:
            if not create:
                raise StorageIOError(f"open {path}: no such file", errno_mod.ENOENT)
            if os.path.dirname(path) not in self._dirs:
                raise StorageIOError(f"open {path}: no such directory", errno_mod.ENOENT)
            inode = _Inode()
            self._names[path] = inode
        return SimFile(self, inode, path)

    def listdir(self, path: str) -> list[str]:
        if path not in self._dirs:
            raise StorageIOError(f"listdir {path}: no such directory", errno_mod.ENOENT)
        return [os.path.basename(n) for n in self._names if os.path.dirname(n) == path]

    def exists(self, path: str) -> bool:
        return path in self._names or path in self._dirs

    def makedirs(self, path: str) -> None:
        # Directories themselves are treated as durable: the log's parent is set up once.
        while path and path not in self._dirs:
            self._dirs.add(path)
            path = os.path.dirname(path)

    def remove(self, path: str) -> None:
        self.check("remove", path)
        self._names.pop(path, None)

    def rename(self, src: str, dst: str) -> None:
        self.check("rename", src)
        inode = self._names.pop(src, None)
        if inode is None:
            raise StorageIOError(f"rename {src}: no such file", errno_mod.ENOENT)
        self._names[dst] = inode

    def fsync_dir(self, path: str) -> None:
        self.check("fsync_dir", path)
        for name in [n for n in self._durable_names if os.path.dirname(n) == path]:
            del self._durable_names[name]
        for name, inode in self._names.items():
            if os.path.dirname(name) == path:
                self._durable_names[name] = inode

    def drop_cache(self, path: str) -> None:
        """The page cache is gone: reads see the synced bytes only (what a failed fdatasync
        left on the disk)."""
        inode = self._names.get(path)
        if inode is not None:
            inode.data = bytearray(inode.synced)
            inode.unsynced_writes.clear()
