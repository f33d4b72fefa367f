"""The disk writer: an exception from a told message stops the core loudly (it would otherwise
end the writer's thread silently and every flush of the core would hang); an asked message's
exception goes back to the asker and the writer goes on."""

from __future__ import annotations

import asyncio
import threading

import pykka
import pytest

from redshank.actors.disk_writer import Blocking, DiskWriter
from redshank.storage import BatchCache, FlushCoordinator


def _boom() -> None:
    raise ValueError("boom")


def _start() -> tuple[pykka.ActorRef[DiskWriter], list[BaseException], threading.Event]:
    seen: list[BaseException] = []
    fired = threading.Event()

    def on_fatal(exc: BaseException) -> None:
        seen.append(exc)
        fired.set()

    return DiskWriter.start(FlushCoordinator(), BatchCache(1 << 20), on_fatal), seen, fired


def test_a_told_job_that_raises_calls_on_fatal_and_stops_the_writer() -> None:
    writer, seen, fired = _start()
    try:
        writer.tell(Blocking(_boom))
        assert fired.wait(10), "on_fatal was not called"
        assert isinstance(seen[0], ValueError) and str(seen[0]) == "boom"
        # pykka stops the actor before it calls on_failure.
        assert not writer.is_alive()
    finally:
        if writer.is_alive():
            writer.stop()


def test_an_asked_job_that_raises_fails_the_asker_and_the_writer_goes_on() -> None:
    writer, seen, _fired = _start()

    async def main() -> None:
        with pytest.raises(ValueError, match="boom"):
            await writer.ask(Blocking(_boom), block=False)
        assert await writer.ask(Blocking(lambda: 42), block=False) == 42

    try:
        asyncio.run(asyncio.wait_for(main(), 10))
        assert seen == []
        assert writer.is_alive()
    finally:
        writer.stop()
