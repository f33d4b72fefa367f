"""The partition manager of a core: opens the partitions this core owns and starts their leaders.

Concern: `Ensure(topic, partition)` -> the log is open (on the disk writer), a partition-leader
actor runs and is registered under `partition_name(topic, partition)`. Idempotent, and
concurrent ensures of one partition share one open. Must not know: Kafka requests, sessions.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import pykka

from redshank.actors._async import spawn
from redshank.actors.disk_writer import OpenLog, ScanProducers
from redshank.actors.partition_leader import PartitionLeader, partition_name
from redshank.actors.runtime import CoreRouter, LoopActor, LoopFuture
from redshank.storage import FlushCoordinator, Log, LogConfig

__all__ = ["MANAGER", "Ensure", "PartitionManager", "log_config"]

MANAGER = "partitions"


@dataclass(frozen=True, slots=True)
class Ensure:
    topic: str
    partition: int
    configs: tuple[tuple[str, str], ...]


def log_config(configs: tuple[tuple[str, str], ...]) -> LogConfig:
    values = dict(configs)

    def num(key: str) -> int | None:
        raw = values.get(key)
        return None if raw is None or int(raw) < 0 else int(raw)

    segment_bytes = num("segment.bytes")
    return LogConfig(
        segment_bytes=segment_bytes if segment_bytes else LogConfig().segment_bytes,
        segment_ms=num("segment.ms"),
        retention_bytes=num("retention.bytes"),
        retention_ms=num("retention.ms"),
    )


class PartitionManager(LoopActor):
    def __init__(self, router: CoreRouter, data_dir: str, coordinator: FlushCoordinator,
                 writer: pykka.ActorRef[Any], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.router = router
        self.data_dir = data_dir
        self.coordinator = coordinator
        self.writer = writer
        self.loop = loop
        self._open: dict[str, LoopFuture[bool]] = {}
        self.leaders: dict[str, pykka.ActorRef[Any]] = {}

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Ensure):
            raise TypeError(f"partition manager got {type(message).__name__}")
        name = partition_name(message.topic, message.partition)
        known = self._open.get(name)
        if known is not None:
            return True if known.done() and known.exception() is None else known
        fut: LoopFuture[bool] = LoopFuture(self.loop)
        self._open[name] = fut
        directory = os.path.join(self.data_dir, "kafka", f"{message.topic}-{message.partition}")
        opened: LoopFuture[Log] = self.writer.ask(  # type: ignore[assignment]
            OpenLog(directory, log_config(message.configs)), block=False)

        async def start() -> bool:
            try:
                log: Log = await opened
                producers = await self.writer.ask(ScanProducers(log), block=False)
            except BaseException:
                del self._open[name]
                raise
            ref = PartitionLeader.start(message.topic, message.partition, log,
                                        self.coordinator, self.writer, self.loop, producers)
            self.leaders[name] = ref
            self.router.register(name, ref)
            return True

        spawn(self.loop, start()).add_done_callback(
            lambda f: fut.fail(e) if (e := f.exception()) is not None else fut.set(True))
        return fut
