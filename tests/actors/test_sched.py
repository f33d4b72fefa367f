"""Scheduler slices: a thread gets the slice it asks for and the default back with 0; a thread
actor started from a loop thread with short slices runs with the default, so its wake-ups do not
preempt that loop. Read back from /proc (this machine's kernel: EEVDF, Linux 6.12+)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from redshank.actors.runtime import ThreadActor, set_thread_slice


def _slice_ns(tid: int) -> int:
    for line in Path(f"/proc/{os.getpid()}/task/{tid}/sched").read_text().splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    raise AssertionError("no se.slice in /proc/<pid>/task/<tid>/sched")


class _MySlice(ThreadActor):
    def slice_ns(self) -> int:
        return _slice_ns(threading.get_native_id())


def _in_thread(body: object) -> None:
    """Run `body` on a fresh thread (slices are per thread: the test runner's stays as is)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            body()  # type: ignore[operator]
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def test_a_thread_gets_its_slice_and_the_default_back() -> None:
    def body() -> None:
        me = threading.get_native_id()
        default = _slice_ns(me)
        assert set_thread_slice(100) is True
        assert _slice_ns(me) == 100_000
        assert set_thread_slice(0) is True
        assert _slice_ns(me) == default

    _in_thread(body)


def test_a_thread_actor_started_from_a_short_slice_loop_runs_with_the_default() -> None:
    def body() -> None:
        default = _slice_ns(threading.get_native_id())
        assert set_thread_slice(100) is True

        async def main() -> int:
            actor = _MySlice.start()
            try:
                return int(await actor.proxy().slice_ns())
            finally:
                await actor.stop(block=False)

        assert asyncio.run(asyncio.wait_for(main(), 20)) == default
        assert _slice_ns(threading.get_native_id()) == 100_000  # the loop keeps its own

    _in_thread(body)
