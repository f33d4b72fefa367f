"""`redshank cluster status`: a node's view of the controller (Raft group 0), from its data dir.

    redshank cluster status --node-dir D [--json]

Reads `D/cluster/controller.json`, which core 0 of a seed node rewrites when the leader, the
term, the applied count or the members change: the cluster uuid, the leader and term this node
knows, how many commands it applied, the voters, the members (id, addresses, cores, state) and
the topic count. Prints a table, or the record itself with `--json`. Exit 1 when the node has
written no view (not a seed, not started, or its controller not started yet). Must not know
how the node runs its controller.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from redshank.cluster.node_join import VIEW_FILE

__all__ = ["format_status", "main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="redshank cluster status",
                                description=__doc__.splitlines()[0])
    p.add_argument("--node-dir", required=True, help="the node's data directory")
    p.add_argument("--json", action="store_true", help="print the view as JSON")
    return p


def format_status(view: dict[str, Any], now: float | None = None) -> str:
    """The view as a few lines and a members table."""
    leader = view.get("leader")
    age = ""
    if "written_at" in view:
        age = f" (written {max(0.0, (now or time.time()) - view['written_at']):.1f} s ago)"
    lines = [
        f"node {view['node_id']}: cluster {view['cluster_uuid'] or '(not bootstrapped)'}",
        f"controller leader {'none known' if leader is None else leader}, term {view['term']}, "
        f"applied {view['applied']}, voters {','.join(map(str, view['voters']))}, "
        f"topics {view['topics']}{age}",
        "",
        f"{'ID':>4}  {'STATE':<15} {'CORES':>5}  {'KAFKA':<22} {'RPC':<22} NODE UUID",
    ]
    for m in view["members"]:
        mark = "*" if m["node_id"] == leader else " "
        lines.append(f"{m['node_id']:>3}{mark}  {m['state']:<15} {m['cores']:>5}  "
                     f"{m['kafka']:<22} {m['rpc']:<22} {m['node_uuid']}")
    if not view["members"]:
        lines.append("   (no members yet)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    path = os.path.join(args.node_dir, VIEW_FILE)
    try:
        with open(path) as f:
            view = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        print(f"redshank cluster status: no controller view in {args.node_dir} (not a seed, "
              "or its controller has not started)", file=sys.stderr)
        return 1
    except OSError as exc:  # unreadable: permissions, an I/O error
        print(f"redshank cluster status: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as exc:
        print(f"redshank cluster status: {path}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(view, indent=1) if args.json else format_status(view))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
