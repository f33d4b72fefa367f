"""A durable work queue on an embedded partition log, surviving a restart.

A `Queue` actor on core 0 owns a `Log` (the jobs) and an `OffsetStore` (each worker group's
committed position). The producer (this program) puts jobs; a `Worker` on core 1 takes jobs from
the committed offset, does them, and commits the next offset, which is durable (fdatasync) before
the commit returns. The program then stops the whole runtime half-way and starts a new one on the
same directory: the worker resumes at the committed offset, so every job is done once.

    program --put--> Queue@0 (Log + OffsetStore, flushed before answering)
    Worker@1 --take(group, n)--> Queue@0 ; does the jobs ; --commit(group, next)--> Queue@0

Run: python3 examples/work_queue.py [--dir DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from typing import Any

from redshank.actors import embed


class Queue(embed.ThreadActor):
    """Owns the job log and the committed offsets; a ThreadActor because flush() waits for the
    disk (never block a core's loop). Created by the program; ends with the runtime."""

    def __init__(self, directory: str) -> None:
        super().__init__()
        self.directory = directory

    def on_start(self) -> None:
        self.log = embed.Log.open(os.path.join(self.directory, "jobs"))
        self.offsets = embed.OffsetStore.open(os.path.join(self.directory, "offsets"))

    def on_stop(self) -> None:
        self.log.close()
        self.offsets.close()

    def on_receive(self, message: Any) -> Any:
        op, *args = message
        if op == "put":  # durable before the producer hears back
            offset = self.log.append_batch(args[0])
            self.log.flush()
            return offset
        if op == "take":
            group, n = args
            start = self.offsets.get(group, self.log.start_offset)
            return [(r.offset, r.value) for r in self.log.read(start, max_records=n)]
        if op == "commit":
            group, next_offset = args
            self.offsets.commit(group, next_offset)
            return next_offset
        if op == "end":
            return self.log.end_offset
        raise ValueError(op)


class Worker(embed.LoopActor):
    """Takes up to `n` jobs, does them, commits; answers with what it did."""

    def on_receive(self, message: Any) -> Any:
        _, n = message
        queue = embed.ref(0, "queue")
        out: embed.LoopFuture[list[tuple[int, str]]] = embed.LoopFuture(self.actor_loop)

        def done(jobs: embed.LoopFuture[Any]) -> None:
            results = [(off, hashlib.sha256(job).hexdigest()[:8]) for off, job in jobs.result()]
            if not results:
                out.set([])
                return
            commit = queue.ask(("commit", "workers", results[-1][0] + 1), block=False)
            commit.add_done_callback(lambda _c: out.set(results))

        queue.ask(("take", "workers", n), block=False).add_done_callback(done)
        return out


def run(directory: str, jobs: int, take: int) -> list[tuple[int, str]]:
    """One life of the program: start a runtime, maybe produce, do up to `take` jobs, stop."""
    with embed.Runtime(cores=2) as rt:
        queue = rt.spawn(0, "queue", Queue, directory)
        worker = rt.spawn(1, "worker", Worker)
        if queue.ask(("end",)) == 0:
            queue.ask(("put", [f"job-{i}".encode() for i in range(jobs)]))
        done: list[tuple[int, str]] = []
        while len(done) < take:
            batch = worker.ask(("work", min(4, take - len(done))))
            if not batch:
                break
            done += batch
        return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", help="queue directory (default: a new temporary one)")
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="work-queue-")
    first = run(directory, args.jobs, take=args.jobs // 2)
    print(f"first run did offsets {[o for o, _ in first]}")
    second = run(directory, args.jobs, take=args.jobs)  # a restart: resumes where it committed
    print(f"after restart did offsets {[o for o, _ in second]}")
    offsets = [o for o, _ in first + second]
    print(f"jobs {args.jobs} done {len(offsets)} each_once {offsets == list(range(args.jobs))}")


if __name__ == "__main__":
    main()
