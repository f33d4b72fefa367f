"""`redshank bench mailbox`: loop actors in one core, and the shared-memory mailboxes across two.

Prints one JSON object (last line): in-core tell/s and ask p50/p99; cross-core one-way frames/s
and MB/s for 64 B, 1 KiB and 64 KiB payloads (read in place by a raw handler), cross-core ask
p50/p99 and pipelined asks/s; each next to a `multiprocessing.Queue` baseline measured in the same
run. One-way and pipelined figures also carry the CPU microseconds per operation on each side
(`cpu_us_sender`/`cpu_us_receiver`): rates swing with other load on a shared machine, CPU per
operation much less (a spinning wait counts, a blocked one does not). Bounded to about a minute.
The machine is shared and has 2 cores: figures are noisy, compare the ratios.
`--quick` runs a tenth of the work (a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import pykka

from redshank.actors.runtime.core_process import CoreContext, new_event_loop
from redshank.actors.runtime.envelope import Kind, decode, encode, register_codec
from redshank.actors.runtime.loop_actor import LoopActor
from redshank.actors.runtime.mailbox import DEFAULT_SPIN_S
from redshank.actors.runtime.supervisor import Supervisor
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["main"]

SIZES = {"64B": 64, "1KiB": 1024, "64KiB": 65536}
COUNTS = {"64B": 200_000, "1KiB": 100_000, "64KiB": 10_000}


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e6, 2)


class _Echo(LoopActor):
    def on_receive(self, message: Any) -> Any:
        return message


# -- in-core -------------------------------------------------------------------------------------


def in_core(scale: float) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        ref = _Echo.start()
        n = int(300_000 * scale)
        t0 = time.perf_counter()
        for _ in range(n):
            ref.tell(1)
        await ref.ask(1, block=False)
        tells = n / (time.perf_counter() - t0)
        lat = []
        for i in range(int(30_000 * scale)):
            t = time.perf_counter()
            await ref.ask(i, block=False)
            lat.append(time.perf_counter() - t)
        await ref.stop(block=False)
        return {
            "tells_per_s": round(tells),
            "ask_p50_us": _pct(lat, 0.5),
            "ask_p99_us": _pct(lat, 0.99),
        }

    loop = new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


class _ThreadEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def in_core_pykka_threads(scale: float) -> dict[str, Any]:
    """The baseline for `in_core`: the same echo on pykka's own thread-per-actor runtime."""
    ref = _ThreadEcho.start()
    try:
        n = int(300_000 * scale)
        t0 = time.perf_counter()
        for _ in range(n):
            ref.tell(1)
        ref.ask(1)
        tells = n / (time.perf_counter() - t0)
        lat = []
        for i in range(int(30_000 * scale)):
            t = time.perf_counter()
            ref.ask(i)
            lat.append(time.perf_counter() - t)
    finally:
        ref.stop()
    return {"tells_per_s": round(tells), "ask_p50_us": _pct(lat, 0.5),
            "ask_p99_us": _pct(lat, 0.99)}


# -- envelope codec: a registered struct codec vs pickle for the same small message --------------


@dataclass(frozen=True, slots=True)
class _Produced:
    partition: int
    base_offset: int
    error: int


_PRODUCED = struct.Struct("<iqh")


def codec(scale: float) -> dict[str, Any]:
    n = int(100_000 * scale)
    message = _Produced(3, 123456789, 0)
    results: dict[str, float] = {}
    for label in ("pickle", "struct"):
        if label == "struct":
            register_codec(
                200,
                _Produced,
                lambda m: _PRODUCED.pack(m.partition, m.base_offset, m.error),
                lambda b: _Produced(*_PRODUCED.unpack(b)),
            )
        t0 = time.perf_counter()
        for _ in range(n):
            first, second = encode(Kind.REPLY, 1, "", message)
            decode(memoryview(first + second))
        results[label] = round((time.perf_counter() - t0) / n * 1e6, 2)
    return {"encode_decode_us": results}


# -- cross-core through the runtime --------------------------------------------------------------


class _Counter(LoopActor):
    def __init__(self, counts: dict[str, int]) -> None:
        super().__init__()
        self.counts = counts

    def on_receive(self, message: Any) -> Any:
        return {**self.counts, "cpu": time.process_time()}


def bench_setup(ctx: CoreContext, scale: float) -> None:
    counts = {"frames": 0, "bytes": 0}

    def raw_sink(_src: int, view: memoryview) -> None:  # in place: no copy, no object per frame
        counts["frames"] += 1
        counts["bytes"] += len(view)

    ctx.router.register_raw("raw", raw_sink)
    ctx.router.register("count", _Counter.start(counts))
    ctx.router.register("echo", _Echo.start())
    if ctx.core == 0 and ctx.generation == 1:
        ctx.loop.create_task(_drive(ctx, scale))


async def _drive(ctx: CoreContext, scale: float) -> None:
    while not ctx.peers_ready():
        await asyncio.sleep(0.005)
    router = ctx.router
    out: dict[str, Any] = {}
    for label, size in SIZES.items():
        payload = b"x" * size
        n = max(1, int(COUNTS[label] * scale))
        before = await router.ref(1, "count").ask(None, block=False)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            sent = router.tell(1, "raw", payload)
            if not sent.done():
                await sent
        after = await router.ref(1, "count").ask(None, block=False)
        dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert after["frames"] - before["frames"] == n
        out[label] = {
            "frames_per_s": round(n / dt),
            "mb_per_s": round(n * size / dt / 1e6, 1),
            **_cpu_us(cpu, after["cpu"] - before["cpu"], n),
        }
    echo = router.ref(1, "echo")
    lat = []
    for i in range(int(20_000 * scale)):
        t = time.perf_counter()
        await echo.ask(i, block=False)
        lat.append(time.perf_counter() - t)
    out["ask"] = {"p50_us": _pct(lat, 0.5), "p99_us": _pct(lat, 0.99)}
    n = int(200_000 * scale)
    before = await router.ref(1, "count").ask(None, block=False)
    t0, cpu0 = time.perf_counter(), time.process_time()
    await _windows(echo, n, window=512)
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    after = await router.ref(1, "count").ask(None, block=False)
    out["pipelined_asks_per_s"] = round(n / dt)
    out["pipelined_cpu"] = _cpu_us(cpu, after["cpu"] - before["cpu"], n)
    path = Path(ctx.node_dir) / "bench.json"
    path.with_suffix(".tmp").write_text(json.dumps(out))
    os.replace(path.with_suffix(".tmp"), path)


def _cpu_us(sender_s: float, receiver_s: float, n: int) -> dict[str, float]:
    """CPU microseconds per operation on each side: unlike rates, barely moved by other load
    (a spinning wait counts, a blocked one does not)."""
    return {
        "cpu_us_sender": round(sender_s / n * 1e6, 2),
        "cpu_us_receiver": round(receiver_s / n * 1e6, 2),
    }


async def _windows(echo: Any, n: int, window: int) -> None:
    """Send `window` asks, await them all, repeat."""
    for start in range(0, n, window):
        futures = [echo.ask(i, block=False) for i in range(start, min(n, start + window))]
        for fut in futures:
            await fut


def cross_core(scale: float, pin: bool, spin_s: float = DEFAULT_SPIN_S) -> dict[str, Any]:
    import functools

    with tempfile.TemporaryDirectory(prefix="rs-bench-") as tmp:
        sup = Supervisor(
            Path(tmp) / "node",
            2,
            functools.partial(bench_setup, scale=scale),
            ring_capacity=1 << 22,
            pin=pin,
            spin_s=spin_s,
        )
        sup.start()
        try:
            sup.wait_ready(60)
            result = Path(tmp) / "node" / "bench.json"
            deadline = time.monotonic() + 120
            while not result.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("cross-core bench did not finish")
                sup.poll(0.05)
            data: dict[str, Any] = json.loads(result.read_text())
        finally:
            sup.stop()
    return data


# -- multiprocessing.Queue baseline ----------------------------------------------------------------


def _q_sink(q: Any, done: Any, n: int) -> None:
    cpu0 = time.process_time()
    for _ in range(n):
        q.get()
    done.put(time.process_time() - cpu0)


def _q_echo(req: Any, rep: Any) -> None:
    while True:
        item = req.get()
        if item is None:
            return
        rep.put(time.process_time() if item == "cpu" else item)


def queue_baseline(scale: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")  # nothing runs threads or loops here yet
    out: dict[str, Any] = {}
    for label, size in SIZES.items():
        n = max(1, int(COUNTS[label] * scale / 4))  # the queue is slower: keep the run short
        q, done = ctx.Queue(maxsize=1024), ctx.Queue()
        proc = ctx.Process(target=_q_sink, args=(q, done, n))
        proc.start()
        payload = b"x" * size
        t0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            q.put(payload)
        receiver_cpu = done.get()
        dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        proc.join()
        out[label] = {
            "frames_per_s": round(n / dt),
            "mb_per_s": round(n * size / dt / 1e6, 1),
            **_cpu_us(cpu, receiver_cpu, n),
        }
    req, rep = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_q_echo, args=(req, rep))
    proc.start()
    lat = []
    for i in range(int(5_000 * scale)):
        t = time.perf_counter()
        req.put(i)
        rep.get()
        lat.append(time.perf_counter() - t)
    out["ask"] = {"p50_us": _pct(lat, 0.5), "p99_us": _pct(lat, 0.99)}
    n = int(50_000 * scale)
    window = 512
    req.put("cpu")
    before = rep.get()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for start in range(0, n, window):  # the same windows as the runtime's
        batch = min(window, n - start)
        for i in range(batch):
            req.put(i)
        for _ in range(batch):
            rep.get()
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    req.put("cpu")
    after = rep.get()
    out["pipelined_asks_per_s"] = round(n / dt)
    out["pipelined_cpu"] = _cpu_us(cpu, after - before, n)
    req.put(None)
    proc.join()
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank bench mailbox", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the two cores")
    parser.add_argument("--spin-us", type=int, default=200,
                        help="the spinning run's poll time after traffic (default 200)")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    started = time.perf_counter()
    baseline = queue_baseline(scale)
    ours = cross_core(scale, pin=not args.no_pin)
    # The same with the cores spinning after traffic (`redshank start --spin-us`): what
    # dedicated CPUs buy; the broker's default is the run above.
    spinning = cross_core(scale, pin=not args.no_pin, spin_s=args.spin_us / 1e6)
    local = in_core(scale)
    local_threads = in_core_pykka_threads(scale)
    envelope = codec(scale)
    result = {
        "bench": "mailbox",
        "note": "2-core shared machine, other work running: noisy; compare ratios",
        "pinned": not args.no_pin,
        "in_core": {**local, "pykka_threads": local_threads,
                    "tells_ratio": round(local["tells_per_s"] / local_threads["tells_per_s"], 1)},
        "envelope_codec": envelope,
        "cross_core": {
            "one_way": {
                label: {
                    "runtime": ours[label],
                    "mp_queue": baseline[label],
                    "frames_ratio": round(
                        ours[label]["frames_per_s"] / baseline[label]["frames_per_s"], 1
                    ),
                }
                for label in SIZES
            },
            "ask": {"runtime": ours["ask"], "mp_queue": baseline["ask"]},
            "pipelined_asks_per_s": {
                "runtime": ours["pipelined_asks_per_s"],
                "mp_queue": baseline["pipelined_asks_per_s"],
            },
            "pipelined_cpu_us_per_ask": {
                "runtime": ours["pipelined_cpu"],
                "mp_queue": baseline["pipelined_cpu"],
            },
            "spinning": {
                "spin_us": args.spin_us,
                "ask": spinning["ask"],
                "pipelined_asks_per_s": spinning["pipelined_asks_per_s"],
                "one_way_64B_frames_per_s": spinning["64B"]["frames_per_s"],
            },
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return 0
