"""Reading a running node's stats from outside it (`redshank actors`, the admin API).

Concern: finding a node through `<node_dir>/node.json` and reading every core's stats block
(read-only shared memory, see stats_block.py): its snapshot, its tables and its counter words.
Must not know how cores produce the numbers.

A node killed with SIGKILL leaves its `node.json` and its shared memory behind (the next start
removes them): the stats blocks still hold its last numbers. So the processes are checked too:
the supervisor's pid must name a live process started no later than `node.json` was written (a
later one is another process that got the pid again), else the node is down; a core whose pid is
gone is reported as down (the supervisor is restarting it).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import posix_ipc

from .node_dir import NodeDir
from .stats_block import StatsReader

__all__ = ["CoreBlock", "NodeNotRunningError", "process_alive", "read_core_blocks",
           "read_node_stats"]


class NodeNotRunningError(RuntimeError):
    """No supervisor runs in that node directory."""


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_started_at(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch, to a clock tick and the boot
    time's whole second), or None if there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    boot = _boot_time()
    if boot is None:
        return None
    # Field 22 (starttime, in clock ticks since boot) counted after the ")" ending the name.
    fields = stat.rsplit(")", 1)[1].split()
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_alive(pid: Any, not_after: float | None = None) -> bool:
    """Whether `pid` names a live process (not a zombie) that, when `not_after` is given,
    started no later than that time (with 2 s of slack for the boot time's rounding)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state in ("Z", "X"):
        return False
    if not_after is None:
        return True
    started = process_started_at(pid)
    return started is None or started <= not_after + 2.0


def read_node_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    if not os.path.isdir(path):
        raise NodeNotRunningError(f"no running node in {path} (no such directory)")
    node = NodeDir(path)
    info = node.read_info()
    if info is None:
        raise NodeNotRunningError(f"no running node in {node.path} (no node.json)")
    try:
        written = node.info_path.stat().st_mtime
    except OSError:
        written = None
    sup_pid = info.get("supervisor_pid")
    if not process_alive(sup_pid, written):
        raise NodeNotRunningError(
            f"the node in {node.path} is down: its supervisor (pid {sup_pid}) is gone "
            "(killed?); its shared memory holds its last numbers until the next start")
    cores: list[dict[str, Any]] = []
    for core in range(int(info["ncores"])):
        doc: dict[str, Any] | None = None
        with contextlib.suppress(posix_ipc.ExistentialError, ValueError):
            reader = StatsReader(node.stats_name(core))
            try:
                doc = reader.read()
            finally:
                reader.close()
        if doc is not None and not process_alive(doc.get("pid")):
            doc = {"core": core, "error": f"down (pid {doc.get('pid')} is gone; restarting?)"}
        cores.append(doc if doc is not None else {"core": core, "error": "no stats (down?)"})
    return {
        "node_dir": str(node.path),
        "prefix": node.prefix,
        "supervisor_pid": info.get("supervisor_pid"),
        "cores": cores,
    }


@dataclass(frozen=True, slots=True)
class CoreBlock:
    """One core's stats block as read now: its snapshot document (None: down or not yet
    published), its tables document, and a copy of its counter words (empty: no block)."""

    core: int
    stats: dict[str, Any] | None
    tables: dict[str, Any] | None
    counters: list[int]


def read_core_blocks(path: str | os.PathLike[str], ncores: int | None = None) -> list[CoreBlock]:
    """Every core's block of the node in `path` (`ncores` from node.json when not given)."""
    node = NodeDir(path)
    if ncores is None:
        info = node.read_info()
        if info is None:
            raise NodeNotRunningError(f"no running node in {node.path} (no node.json)")
        ncores = int(info["ncores"])
    blocks = []
    for core in range(ncores):
        try:
            reader = StatsReader(node.stats_name(core))
        except (posix_ipc.ExistentialError, ValueError):
            blocks.append(CoreBlock(core, None, None, []))
            continue
        try:
            blocks.append(CoreBlock(core, reader.read(), reader.read_tables(), reader.counters()))
        finally:
            reader.close()
    return blocks
