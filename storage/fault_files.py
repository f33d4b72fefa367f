"""A file layer that injects disk faults into the real one: broker-level disk fault tests.

Concern: making a running broker's disk fail on command (ENOSPC, EIO, slow fdatasync) without
root, loop devices or dm-flakey, so tests can drive real broker processes through a full disk
or a failing fdatasync and check what the clients were told. A broker uses it only when
$REDSHANK_DISK_FAULTS names a control file (`files_from_env`); otherwise it runs on `OsFiles`.

The control file is JSON, re-read whenever its mtime or size changes (a missing file means no
faults), so a test turns faults on and off while the broker runs:

    {"match": "kafka/t-",                       # only paths containing this (default: all)
     "fail": {"pwrite": "ENOSPC", "fallocate": "ENOSPC", "fdatasync": "EIO"},
     "delay_ms": {"fdatasync": 300},            # sleep before the call
     "events": "/tmp/x/events"}                 # append one line per fdatasync of a match

"syncfs" (in "fail" or "delay_ms") makes the matching files take part in the shared syncfs of
a flush round (`file_io.sync_all`), as real files do, with the fault applied to it: the whole
round's group fails. Without it they keep an fdatasync each, so "fdatasync" faults hit one
file at a time.

An event line is `fdatasync <start_ns> <end_ns> <ok|ERRNO> <path>` on CLOCK_MONOTONIC, which
is one clock for every process of the machine, so a test can order the broker's syncs against
the responses its clients saw. Knows nothing of segments or batches.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import field
from typing import Any

from redshank.protocol.fast_dataclass import dataclass
from redshank.storage.errors import StorageIOError
from redshank.storage.file_io import Buffer, FileHandle, FileLayer, OsFile, OsFiles

__all__ = ["ENV", "FaultFiles", "FaultSpec", "files_from_env"]

ENV = "REDSHANK_DISK_FAULTS"
_OPS = frozenset({"pwrite", "pread", "fdatasync", "fallocate", "truncate", "open", "remove",
                  "rename", "fsync_dir", "syncfs"})


@dataclass(frozen=True, slots=True)
class FaultSpec:
    match: str = ""
    fail: dict[str, int] = field(default_factory=dict)  # op -> errno
    delay_ms: dict[str, float] = field(default_factory=dict)
    events: str | None = None

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> FaultSpec:
        fail: dict[str, int] = {}
        for op, name in dict(doc.get("fail") or {}).items():
            if op not in _OPS:
                raise ValueError(f"unknown file operation {op!r}")
            code = getattr(errno, str(name), None) if isinstance(name, str) else int(name)
            if not isinstance(code, int):
                raise ValueError(f"unknown errno {name!r}")
            fail[op] = code
        delays = {str(op): float(ms) for op, ms in dict(doc.get("delay_ms") or {}).items()}
        events = doc.get("events")
        return cls(str(doc.get("match") or ""), fail, delays,
                   None if events is None else str(events))


_NO_FAULTS = FaultSpec()


class FaultFiles:
    """`FileLayer` over another one (the real `OsFiles`) with the faults the control file says."""

    def __init__(self, inner: FileLayer, control: str) -> None:
        self.inner = inner
        self.control = control
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._spec = _NO_FAULTS

    def spec(self) -> FaultSpec:
        try:
            st = os.stat(self.control)
            key: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        with self._lock:
            if key != self._seen:
                self._seen = key
                self._spec = _NO_FAULTS
                if key is not None:
                    try:
                        with open(self.control, encoding="utf-8") as f:
                            self._spec = FaultSpec.parse(json.load(f))
                    except (OSError, ValueError):  # half-written: read it again next call
                        self._seen = None
            return self._spec

    def before(self, op: str, path: str) -> FaultSpec | None:
        """Apply `op`'s delay and failure for `path`; the spec when it matched."""
        spec = self.spec()
        if spec is _NO_FAULTS or spec.match not in path:
            return None
        delay = spec.delay_ms.get(op)
        if delay:
            time.sleep(delay / 1000)
        code = spec.fail.get(op)
        if code is not None:
            raise StorageIOError(f"{op} {path}: {os.strerror(code)} (injected)", code)
        return spec

    def record(self, spec: FaultSpec | None, path: str, start_ns: int, outcome: str) -> None:
        if spec is None or spec.events is None or spec.match not in path:
            return
        line = f"fdatasync {start_ns} {time.monotonic_ns()} {outcome} {path}\n"
        fd = os.open(spec.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    # -- FileLayer -------------------------------------------------------------------------
    def open(self, path: str, *, create: bool = False) -> FileHandle:
        self.before("open", path)
        return _FaultFile(self, self.inner.open(path, create=create), path)

    def listdir(self, path: str) -> list[str]:
        return self.inner.listdir(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def makedirs(self, path: str) -> None:
        self.inner.makedirs(path)

    def remove(self, path: str) -> None:
        self.before("remove", path)
        self.inner.remove(path)

    def rename(self, src: str, dst: str) -> None:
        self.before("rename", src)
        self.inner.rename(src, dst)

    def fsync_dir(self, path: str) -> None:
        self.before("fsync_dir", path)
        self.inner.fsync_dir(path)

    def drop_cache(self, path: str) -> None:
        self.inner.drop_cache(path)


class _FaultFile:
    __slots__ = ("_files", "_inner", "path")

    def __init__(self, files: FaultFiles, inner: FileHandle, path: str) -> None:
        self._files = files
        self._inner = inner
        self.path = path

    def pwrite(self, buffers: Sequence[Buffer], pos: int) -> None:
        self._files.before("pwrite", self.path)
        self._inner.pwrite(buffers, pos)

    def pread(self, size: int, pos: int) -> bytes:
        self._files.before("pread", self.path)
        return self._inner.pread(size, pos)

    def fdatasync(self) -> None:
        start = time.monotonic_ns()
        spec: FaultSpec | None = None
        try:
            spec = self._files.before("fdatasync", self.path)
            self._inner.fdatasync()
        except StorageIOError as exc:
            self._files.record(self._files.spec(), self.path, start,
                               errno.errorcode.get(exc.errno or 0, "error"))
            raise
        self._files.record(spec, self.path, start, "ok")

    def group_sync_file(self) -> OsFile | None:
        """The real file under this one, to share a syncfs with others (`file_io.sync_all`),
        while the faults name "syncfs" for this path; else None (an fdatasync of its own)."""
        spec = self._files.spec()
        if (spec is _NO_FAULTS or spec.match not in self.path
                or ("syncfs" not in spec.fail and "syncfs" not in spec.delay_ms)
                or type(self._inner) is not OsFile):
            return None
        return self._inner

    def before_group_sync(self) -> None:
        """The shared syncfs is about to run: its delay, or its failure for the group."""
        self._files.before("syncfs", self.path)

    def fallocate(self, pos: int, length: int) -> None:
        self._files.before("fallocate", self.path)
        self._inner.fallocate(pos, length)

    def truncate(self, size: int) -> None:
        self._files.before("truncate", self.path)
        self._inner.truncate(size)

    def size(self) -> int:
        return self._inner.size()

    def close(self) -> None:
        self._inner.close()


def files_from_env() -> FileLayer:
    """The broker's file layer: `FaultFiles` when $REDSHANK_DISK_FAULTS is set, else `OsFiles`."""
    control = os.environ.get(ENV)
    return FaultFiles(OsFiles(), control) if control else OsFiles()
