"""The `redshank` command: a table of subcommands, each a module with `main(argv) -> int`.

Subcommands are imported lazily so `redshank --help` stays fast and a command whose module is not
built yet says so instead of failing at import.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# (words, module, one-line help). The longest matching word prefix wins.
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("start",), "redshank.tools.start", "start a broker node (single node on 127.0.0.1:9092)"),
    (("cluster", "start"), "redshank.tools.cluster_cmd",
     "start N nodes on this machine (node ids 1..N)"),
    (("cluster", "status"), "redshank.tools.cluster_status",
     "a node's view of the controller (cluster uuid, leader, members)"),
    (("actors",), "redshank.tools.actors_cmd", "show every core's mailboxes and actors"),
    (("sim",), "redshank.tools.sim", "run seeded Raft simulations"),
    (("bench", "codec"), "redshank.tools.bench.codec", "benchmark the Kafka codec"),
    (("bench", "records"), "redshank.tools.bench.records", "benchmark records and compression"),
    (("bench", "storage"), "redshank.tools.bench.storage", "benchmark the partition log"),
    (("bench", "mailbox"), "redshank.tools.bench.mailbox", "benchmark actors and mailboxes"),
    (("bench", "copies"), "redshank.tools.bench.copies", "count a batch's cross-core copies"),
    (("bench", "produce"), "redshank.tools.bench.produce", "benchmark produce against a broker"),
    (("bench", "consume"), "redshank.tools.bench.consume", "benchmark consume against a broker"),
    (("bench", "e2e"), "redshank.tools.bench.e2e", "benchmark end-to-end latency"),
    (("bench", "catchup"), "redshank.tools.bench.catchup",
     "benchmark a lagging follower's catch-up on a 3-node cluster"),
)


def _usage() -> str:
    lines = ["usage: redshank COMMAND [ARGS...]", "", "commands:"]
    for words, _module, about in COMMANDS:
        lines.append(f"  {' '.join(words):<16} {about}")
    return "\n".join(lines)


def resolve(argv: Sequence[str]) -> tuple[tuple[str, ...], str] | None:
    """Return the (words, module) of the command named by the start of `argv`, if any."""
    best: tuple[tuple[str, ...], str] | None = None
    for words, module, _about in COMMANDS:
        if tuple(argv[: len(words)]) == words and (best is None or len(words) > len(best[0])):
            best = (words, module)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    found = resolve(args)
    if found is None:
        print(f"redshank: unknown command {' '.join(args[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    words, module_name = found
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            print(f"redshank {' '.join(words)}: not built yet", file=sys.stderr)
            return 3
        raise
    entry: Callable[[list[str]], int] = module.main
    return entry(args[len(words) :])


if __name__ == "__main__":
    sys.exit(main())
