"""Reading a running node's stats from outside it (`redshank actors`, the admin API).

Concern: finding a node through `<node_dir>/node.json` and reading every core's stats block
(read-only shared memory, see stats_block.py): its snapshot, its tables and its counter words.
Must not know how cores produce the numbers.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import posix_ipc

from .node_dir import NodeDir
from .stats_block import StatsReader

__all__ = ["CoreBlock", "NodeNotRunningError", "read_core_blocks", "read_node_stats"]


class NodeNotRunningError(RuntimeError):
    """No supervisor runs in that node directory."""


def read_node_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    node = NodeDir(path)
    info = node.read_info()
    if info is None:
        raise NodeNotRunningError(f"no running node in {node.path} (no node.json)")
    cores: list[dict[str, Any]] = []
    for core in range(int(info["ncores"])):
        doc: dict[str, Any] | None = None
        with contextlib.suppress(posix_ipc.ExistentialError, ValueError):
            reader = StatsReader(node.stats_name(core))
            try:
                doc = reader.read()
            finally:
                reader.close()
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
