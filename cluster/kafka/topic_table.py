"""Topic metadata as the broker holds it: names, stable ids, partition counts and the shard table.

Concern: what a topic is (`TopicInfo`), how a name is validated, which core owns a partition, and
how a topic record is stored as bytes (the node's kvstore for now; Raft group 0 later). Must not
know: where the bytes are stored, actors, sockets.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import field
from typing import NamedTuple, NewType

from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "CoreId",
    "TopicInfo",
    "TopicPartition",
    "TopicTable",
    "assign_cores",
    "decode_topic",
    "encode_topic",
    "topic_key",
    "validate_topic_name",
]

CoreId = NewType("CoreId", int)


class TopicPartition(NamedTuple):
    """A partition of a topic by name: the key of every per-partition map on the request path
    (a tuple, so a plain `(topic, partition)` finds the same entry)."""

    topic: str
    partition: int

# Kafka's default max.message.bytes (1 MiB + record batch overhead).
DEFAULT_MAX_MESSAGE_BYTES = 1048588
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
_MAX_NAME = 249
_KEY_PREFIX = b"topic/"


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    # shard_table: partition index -> owning core, fixed at creation.
    cores: tuple[int, ...]
    configs: tuple[tuple[str, str], ...] = field(default=())
    # A topic of the controller (group 0) in cluster mode: `cores` holds this node's cores of
    # the partitions it hosts; the node's own topic table does not know it (never stored).
    replicated: bool = False

    @property
    def partitions(self) -> int:
        return len(self.cores)

    def core_of(self, partition: int) -> CoreId | None:
        if 0 <= partition < len(self.cores):
            return CoreId(self.cores[partition])
        return None

    @property
    def max_message_bytes(self) -> int:
        for key, value in self.configs:
            if key == "max.message.bytes":
                return int(value)
        return DEFAULT_MAX_MESSAGE_BYTES


def validate_topic_name(name: str | None) -> str | None:
    """None if `name` is a legal Kafka topic name, else why not (INVALID_TOPIC_EXCEPTION)."""
    if not name:
        return "topic name is empty"
    if name in (".", ".."):
        return f"topic name {name!r} is not allowed"
    if len(name) > _MAX_NAME:
        return f"topic name longer than {_MAX_NAME} characters"
    if not _LEGAL.match(name):
        return f"topic name {name!r} has characters outside [a-zA-Z0-9._-]"
    return None


def assign_cores(name: str, partitions: int, ncores: int) -> tuple[int, ...]:
    """Spread partitions round-robin over the cores, starting at a core derived from the name
    (stable across restarts: crc32, not Python's salted hash), so small topics use every core."""
    start = zlib.crc32(name.encode()) % ncores
    return tuple((start + p) % ncores for p in range(partitions))


def topic_key(name: str) -> bytes:
    return _KEY_PREFIX + name.encode()


def encode_topic(info: TopicInfo) -> bytes:
    return json.dumps(
        {
            "name": info.name,
            "id": str(info.topic_id),
            "cores": list(info.cores),
            "configs": [list(kv) for kv in info.configs],
        }
    ).encode()


def decode_topic(raw: bytes) -> TopicInfo:
    doc = json.loads(raw)
    return TopicInfo(
        name=str(doc["name"]),
        topic_id=uuid.UUID(doc["id"]),
        cores=tuple(int(c) for c in doc["cores"]),
        configs=tuple((str(k), str(v)) for k, v in doc["configs"]),
    )


class TopicTable:
    """The in-memory view of the topic records (`_table`: derived, rebuilt from the store)."""

    def __init__(self, topics: Iterable[TopicInfo] = ()) -> None:
        self._by_name: dict[str, TopicInfo] = {t.name: t for t in topics}

    @staticmethod
    def key_prefix() -> bytes:
        return _KEY_PREFIX

    def get(self, name: str) -> TopicInfo | None:
        return self._by_name.get(name)

    def add(self, info: TopicInfo) -> None:
        self._by_name[info.name] = info

    def remove(self, name: str) -> TopicInfo | None:
        return self._by_name.pop(name, None)

    def by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return next((t for t in self._by_name.values() if t.topic_id == topic_id), None)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)
