"""`redshank sim [--controller | --cluster] --seeds N [--start S] [--jobs J] [--seed X]`: run
seeded simulations: partitions on Raft (default), the controller, Raft group 0
(`--controller`), or a 3-node cluster hosting the controller and the partitions it creates
(`--cluster`).

Soak runs use any number of seeds; `--seed X` replays one seed and prints its parameters and every
violation. The last line of output is one JSON object: seeds run, violations, seeds per second.
On a terminal, stderr shows a progress bar (seeds done, violations so far, seeds/s, ETA).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import structlog

from redshank.cluster.raft.sim import SimResult, run_seed
from redshank.cluster.raft.sim.cluster_sim import run_cluster_seed
from redshank.cluster.raft.sim.controller_sim import run_controller_seed
from redshank.tools.bench._progress import counted

RUNS = {"raft": run_seed, "controller": run_controller_seed, "cluster": run_cluster_seed}


def _run(seed: int, kind: str = "raft") -> tuple[int, list[str], str, str, dict[str, int]]:
    r: SimResult = RUNS[kind](seed)
    return r.seed, r.violations, r.trace_hash, r.describe(), {**r.stats, **r.acked,
                                                               "events": r.events}


def _quiet() -> None:
    # The storage logs what recovery cut and which segments rolled: thousands of lines a run.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _run_quiet(seed: int, kind: str = "raft"
               ) -> tuple[int, list[str], str, str, dict[str, int]]:
    _quiet()
    return _run(seed, kind)


def _collect(results: Iterator[tuple[int, list[str], str, str, dict[str, int]]],
             replay: bool, flag: str, failed: list[int], totals: dict[str, int],
             advance: Callable[[int, str], None]) -> int:
    """Fold each seed's result into `failed` and `totals`; the number of violations."""
    violations = 0
    for seed, bad, trace, text, counts in results:
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        violations += len(bad)
        if bad:
            failed.append(seed)
            print(f"{text}\nreplay: redshank sim {flag}--seed {seed}", file=sys.stderr)
        elif replay:
            print(f"{text}\ntrace={trace} counts={counts}")
        advance(1, f"{violations} violations")
    return violations


def main(argv: list[str]) -> int:
    _quiet()
    ap = argparse.ArgumentParser(prog="redshank sim", description=__doc__)
    ap.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--seed", type=int, default=None, help="replay one seed verbosely")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--controller", action="store_true",
                       help="controller seeds (Raft group 0 on 3 nodes) instead of partition seeds")
    which.add_argument("--cluster", action="store_true",
                       help="cluster seeds: 3 nodes hosting the controller and the partitions it "
                            "creates")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be at least 1 (got {args.seeds})")
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1 (got {args.jobs})")
    kind = "controller" if args.controller else "cluster" if args.cluster else "raft"
    flag = "" if kind == "raft" else f"--{kind} "
    seeds = [args.seed] if args.seed is not None else list(range(args.start,
                                                                 args.start + args.seeds))
    t0 = time.perf_counter()
    failed: list[int] = []
    totals: dict[str, int] = {}
    pool = ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 and len(seeds) > 1 else None
    try:
        run = functools.partial(_run_quiet if pool else _run, kind=kind)
        # Small chunks with a bar to move: 16 seeds per chunk would make it jump.
        chunk = 16 if not sys.stderr.isatty() else max(1, min(16, len(seeds) // 200))
        results = pool.map(run, seeds, chunksize=chunk) if pool else map(run, seeds)
        with counted("seeds", len(seeds)) as advance:
            violations = _collect(results, args.seed is not None, flag, failed, totals,
                                  advance)
    finally:
        if pool is not None:
            pool.shutdown()
    elapsed = time.perf_counter() - t0
    print(json.dumps({
        "seeds": len(seeds), "start": seeds[0] if seeds else args.start,
        "violations": violations, "failed_seeds": failed[:100],
        "seeds_per_second": round(len(seeds) / elapsed, 1) if elapsed > 0 else None,
        "elapsed_s": round(elapsed, 2), "jobs": args.jobs, "totals": totals,
        "kind": kind,
    }))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
