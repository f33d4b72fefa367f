"""Reading a running node's stats from outside it (`redshank actors`).

Concern: finding a node through `<node_dir>/node.json` and reading every core's stats block
(read-only shared memory, see stats_block.py). Must not know how cores produce the numbers.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import posix_ipc

from .node_dir import NodeDir
from .stats_block import StatsReader

__all__ = ["NodeNotRunningError", "read_node_stats"]


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
