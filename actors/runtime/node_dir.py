"""A node's directory and its shared-memory names: one supervisor per directory, stale cleanup.

Concern: naming every segment of a node under one prefix derived from its directory, holding an
exclusive lock while a supervisor runs, and removing what a killed supervisor left behind on the
next start. `redshank actors --node-dir DIR` finds a running node through `node.json` here. Must not
know about rings' contents, actors or loops.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import posix_ipc

__all__ = ["NodeBusyError", "NodeDir", "node_prefix"]

SHM_DIR = Path("/dev/shm")


class NodeBusyError(RuntimeError):
    """Another supervisor holds this node directory."""


def node_prefix(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:12]
    return f"rs{digest}"


class NodeDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.prefix = node_prefix(self.path)
        self._lock_fd: int | None = None

    # segment names (posix_ipc wants a leading slash; /dev/shm lists them without it)
    def control_name(self) -> str:
        return f"/{self.prefix}-ctl"

    def ring_name(self, src: int, dst: int, src_gen: int, dst_gen: int) -> str:
        return f"/{self.prefix}-r{src}.{dst}.{src_gen}.{dst_gen}"

    def stats_name(self, core: int) -> str:
        return f"/{self.prefix}-s{core}"

    @property
    def info_path(self) -> Path:
        return self.path / "node.json"

    def lock(self) -> None:
        fd = os.open(self.path / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NodeBusyError(f"{self.path} is used by a running supervisor") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def segments(self) -> list[str]:
        """Every existing segment of this node (as posix_ipc names)."""
        try:
            names = os.listdir(SHM_DIR)
        except FileNotFoundError:
            return []
        return sorted(f"/{n}" for n in names if n.startswith(self.prefix + "-"))

    def remove_segments(self) -> int:
        removed = 0
        for name in self.segments():
            with contextlib.suppress(posix_ipc.ExistentialError):
                posix_ipc.unlink_shared_memory(name)
                removed += 1
        return removed

    def write_info(self, info: dict[str, Any]) -> None:
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"prefix": self.prefix, **info}))
        os.replace(tmp, self.info_path)

    def read_info(self) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = json.loads(self.info_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return info

    def remove_info(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.info_path.unlink()
