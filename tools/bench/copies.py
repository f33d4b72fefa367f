"""`redshank bench copies`: how many times a record batch is copied on its way across cores, for a
produce (`Append`) and for a fetch (`ReadResult`), counted over the real runtime in one process:
two `CoreRouter`s, their `RingTransport`s and shared-memory rings, on one loop.

The two ends do what the broker does. Produce: the session core sends `Append(view of the
request)` with `ask_two_phase` (`BrokerCore.append_two_phase`); the owner copies the records into
the buffer its log keeps (`PartitionLeader._append`). Fetch: the owner
answers a remote `Read` with the log cache's view (`PartitionLeader._read`); the session core
awaits the `ReadResult`. `--session-copy` and `--read-copy` add the copies the broker made before
the batch codecs (`bytes(w.records)` before sending, `bytes(data)` for a remote reader);
`--busy` makes the owner's inbox non-empty when the append arrives, so it is queued rather than
handled inline (the router copies it out of the ring first).

Counting: a copy into a new object allocates the batch's size while its source is alive, so the
tracemalloc peak of each phase, in batch sizes, is the heap copies of that phase; copies into the
ring allocate nothing and are counted by the ring's byte counter. With a 1 MiB batch the rest of
the run is noise. `--rounds N` also times N appends and N fetches one after another (process CPU
per operation, both ends included, no tracemalloc). Prints one JSON object (last line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import tracemalloc
from typing import Any

from redshank.actors.runtime import (
    CoreRouter,
    LoopActor,
    LoopFuture,
    RingConsumer,
    RingProducer,
    RingSegment,
    RingTransport,
    Staged,
)
from redshank.cluster.partition.api import Append, PartitionResult, Read, ReadResult

__all__ = ["Meter", "RingPair", "main", "measure"]

OWNER = "partition"


class Meter:
    """Bytes newly allocated at peak, per named phase (tracemalloc)."""

    def __init__(self) -> None:
        self.phases: dict[str, int] = {}
        self._base = 0

    def start(self) -> None:
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]

    def mark(self, phase: str) -> None:
        current, peak = tracemalloc.get_traced_memory()
        self.phases[phase] = self.phases.get(phase, 0) + max(0, peak - self._base)
        tracemalloc.reset_peak()
        self._base = current


class _Owner(LoopActor):
    """The partition's stand-in: copies appends as the leader does, answers reads with views."""

    def __init__(self, meter: Meter, cache: bytearray, read_copy: bool,
                 kept: list[bytearray], in_place: list[bool]) -> None:
        super().__init__()
        self.meter = meter
        self.cache = cache
        self.read_copy = read_copy
        self.kept = kept
        self.in_place = in_place

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Append):
            self.meter.mark("owner_decode")
            records = message.records
            self.in_place.append(isinstance(records, memoryview)
                                 and isinstance(records.obj, mmap.mmap))
            # PartitionLeader._append: a bytearray is the owner's already (the router copied
            # a queued append out of the ring), anything else is copied into one.
            self.kept.append(records if type(records) is bytearray else bytearray(records))
            self.meter.mark("owner_copy")
            acked: LoopFuture[PartitionResult] = LoopFuture()
            acked.set(PartitionResult(0, 0, 0))
            return Staged(None, acked)
        if isinstance(message, Read):
            self.meter.mark("owner_decode")
            data = memoryview(self.cache)  # Log.read_cached: a view of the cached batch
            return ReadResult(0, 1, 0, bytes(data) if self.read_copy else data)
        return None


class RingPair:
    """Cores 0 and 1 on one loop, joined by real shared-memory rings."""

    def __init__(self, capacity: int, meter: Meter, *, read_copy: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        self.meter = meter
        self.busy = False
        prefix = f"/redshank-copies-{os.getpid()}-{id(self)}"
        self.names = [f"{prefix}-{a}{b}" for a, b in ((0, 1), (1, 0))]
        self.segments = [RingSegment(n, capacity, create=True) for n in self.names]
        self.doorbells = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(2)]
        self.transports = [
            RingTransport(c, self.loop, self.doorbells, self._on_frame(c)) for c in range(2)
        ]
        self.routers = [CoreRouter(c, 2, self.loop, self.transports[c]) for c in range(2)]
        for core, out_name, in_name in ((0, self.names[0], self.names[1]),
                                        (1, self.names[1], self.names[0])):
            self.transports[core].attach(1 - core, 1, RingProducer(RingSegment(out_name)),
                                         RingConsumer(RingSegment(in_name)))
            self.transports[core].start()
        self.cache = bytearray()
        self.kept: list[bytearray] = []
        self.in_place: list[bool] = []
        self.owner = _Owner.start_on(self.loop, meter, self.cache, read_copy, self.kept,
                                     self.in_place)
        self.routers[1].register(OWNER, self.owner)

    def _on_frame(self, core: int) -> Any:
        def on_frame(src: int, frame: memoryview) -> None:
            self.meter.mark("session_send" if core == 1 else "owner_reply")
            if core == 1 and self.busy:  # a local message ahead: the append is queued
                self.owner.tell("busy")
            self.routers[core].on_frame(src, frame)
        return on_frame

    def ring_bytes(self) -> int:
        """Payload bytes written into the rings so far, both ways."""
        return sum(p.producer.bytes for t in self.transports
                   for p in t._peers if p.producer is not None)

    def close(self) -> None:
        self.owner.stop(block=False)
        self.loop.run_until_complete(asyncio.sleep(0.01))
        for t in self.transports:
            t.close()
        for seg in self.segments:
            seg.close()
        for name in self.names:
            RingSegment.unlink(name)
        for fd in self.doorbells:
            os.close(fd)
        self.loop.close()


def measure(size: int, *, session_copy: bool = False, read_copy: bool = False,
            busy: bool = False) -> dict[str, Any]:
    """Copies of a `size`-byte batch per phase of one cross-core produce and one fetch."""
    meter = Meter()
    pair = RingPair(max(1 << 16, 1 << (4 * size + 4096).bit_length()), meter,
                    read_copy=read_copy)
    pair.cache[:] = os.urandom(size)
    request = memoryview(os.urandom(size)).toreadonly()  # the request frame's records view
    pair.busy = busy
    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    try:
        async def produce() -> tuple[dict[str, int], int]:
            ring0 = pair.ring_bytes()
            meter.phases.clear()
            meter.start()
            records = bytes(request) if session_copy else request  # BrokerCore.append_two_phase
            _seq, acked = pair.routers[0].ref(1, OWNER).ask_two_phase(Append(records, -1, None))
            await acked
            meter.mark("session_receive")
            return dict(meter.phases), pair.ring_bytes() - ring0

        async def fetch() -> tuple[dict[str, int], int, bytes]:
            ring0 = pair.ring_bytes()
            meter.phases.clear()
            meter.start()
            reply = pair.routers[0].ref(1, OWNER).ask(Read(0, size, -1, True, 0), block=False)
            res: ReadResult = await reply
            meter.mark("session_receive")
            assert res.records is not None
            return dict(meter.phases), pair.ring_bytes() - ring0, bytes(res.records)

        produced, produce_ring = pair.loop.run_until_complete(produce())
        fetched, fetch_ring, got = pair.loop.run_until_complete(fetch())
    finally:
        if not started:
            tracemalloc.stop()
        in_place = list(pair.in_place)
        intact = bytes(pair.kept[0]) == bytes(request) and got == bytes(pair.cache)
        pair.close()

    def copies(phases: dict[str, int], ring: int) -> dict[str, float]:
        """Batch sizes per phase: heap at peak (a copy is 1.0; pickle.dumps' growing buffer
        peaks at about 1.5 for its one copy) and written into the ring."""
        out = {k: round(v / size, 1) for k, v in phases.items()}
        out["ring"] = round(ring / size, 1)
        out["total"] = round(sum(out.values()), 1)
        return out

    return {"batch_bytes": size, "session_copy": session_copy, "read_copy": read_copy,
            "busy": busy, "records_read_in_place": in_place == [True], "intact": intact,
            "produce": copies(produced, produce_ring), "fetch": copies(fetched, fetch_ring)}


def timed(size: int, rounds: int, *, session_copy: bool = False, read_copy: bool = False
          ) -> dict[str, float]:
    """CPU per cross-core append and per fetch of a `size`-byte batch, both cores on one loop
    (so wall time is the work of both ends), without tracemalloc: the cost of the copies."""
    import time

    meter = Meter()
    pair = RingPair(max(1 << 16, 1 << (4 * size + 4096).bit_length()), meter,
                    read_copy=read_copy)
    pair.cache[:] = os.urandom(size)
    request = memoryview(os.urandom(size)).toreadonly()
    ref = pair.routers[0].ref(1, OWNER)

    async def produce() -> None:
        for _ in range(rounds):
            records = bytes(request) if session_copy else request
            await ref.ask_two_phase(Append(records, -1, None))[1]
            pair.kept.clear()

    async def fetch() -> None:
        for _ in range(rounds):
            res = await ref.ask(Read(0, size, -1, True, 0), block=False)
            assert res.records is not None and len(res.records) == size

    try:
        out: dict[str, float] = {"batch_bytes": size, "rounds": rounds}
        for label, body in (("produce", produce), ("fetch", fetch)):
            pair.loop.run_until_complete(body())  # warm
            t0 = time.process_time()
            pair.loop.run_until_complete(body())
            out[f"{label}_cpu_us"] = round((time.process_time() - t0) / rounds * 1e6, 2)
        return out
    finally:
        pair.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank bench copies", description=__doc__)
    parser.add_argument("--size", type=int, default=1 << 20, help="batch bytes (default 1 MiB)")
    parser.add_argument("--session-copy", action="store_true",
                        help="copy the records before sending, as the broker did before")
    parser.add_argument("--read-copy", action="store_true",
                        help="the owner copies a remote read's batches, as it did before")
    parser.add_argument("--busy", action="store_true",
                        help="the owner's inbox is not empty: the append is queued")
    parser.add_argument("--rounds", type=int, default=0,
                        help="also time this many appends and fetches (CPU per operation)")
    args = parser.parse_args(argv)
    if args.size < 1 or args.rounds < 0:
        parser.error("--size must be at least 1 and --rounds at least 0")
    result = measure(args.size, session_copy=args.session_copy, read_copy=args.read_copy,
                     busy=args.busy)
    if args.rounds:
        result["timed"] = timed(args.size, args.rounds, session_copy=args.session_copy,
                                read_copy=args.read_copy)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
