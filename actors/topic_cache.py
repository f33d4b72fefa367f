"""The topic cache of a core: the topic records this core's sessions plan requests against.

Concern: one dict per core, `topics` (name -> TopicInfo), filled by lookups at the topic
controller and kept current by the controller, which tells every core before it answers: a
created or grown topic (`TopicCreated`), a deleted one (`TopicDeleted`), new configs
(`TopicChanged`, so a produce on any core checks the new max.message.bytes). It is what a core
answers from while the controller's core restarts (issue 12). It also applies the partition
leaders' announcements of their leader epoch (`LeaderChanged`) to the core's `LeadersTable`.
Must not know: Kafka requests, sessions, logs.
"""

from __future__ import annotations

import uuid
from typing import Any

from redshank.actors.runtime import LoopActor
from redshank.cluster.kafka import LeadersTable, TopicInfo, TopicPartition
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["TOPIC_CACHE", "LeaderChanged", "TopicCache", "TopicChanged", "TopicCreated",
           "TopicDeleted"]

TOPIC_CACHE = "topic-cache"


@dataclass(frozen=True, slots=True)
class TopicChanged:
    info: TopicInfo


@dataclass(frozen=True, slots=True)
class TopicCreated:
    """The topic's record as the controller has just written it (created, or grown)."""

    info: TopicInfo


@dataclass(frozen=True, slots=True)
class TopicDeleted:
    name: str
    topic_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class LeaderChanged:
    """A partition's leader serves in `epoch` (its Raft term), told to every core."""

    topic: str
    partition: int
    topic_id: uuid.UUID | None
    epoch: int


class TopicCache(LoopActor):
    """On every core, started by `setup_core`; ends with its core."""

    def __init__(self, topics: dict[str, TopicInfo], leaders: LeadersTable | None = None
                 ) -> None:
        super().__init__()
        self.topics = topics
        self.leaders = LeadersTable() if leaders is None else leaders

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TopicCreated):
            # The controller is the one writer and its messages reach this core in order: its
            # latest record wins.
            self.topics[message.info.name] = message.info
            return True
        if isinstance(message, TopicDeleted):
            known = self.topics.get(message.name)
            if known is not None and known.topic_id == message.topic_id:
                del self.topics[message.name]
                self.leaders.drop_topic(message.name)
            return True
        if isinstance(message, LeaderChanged):
            self.leaders.update(TopicPartition(message.topic, message.partition),
                                message.topic_id, message.epoch)
            return True
        if not isinstance(message, TopicChanged):
            raise TypeError(f"topic cache got {type(message).__name__}")
        known = self.topics.get(message.info.name)
        # Only a record this core already uses is replaced: one it never looked up is fetched
        # fresh when first needed, and one of an older incarnation (deleted, created again
        # under the same name) is left for the lookup that replaces it.
        if known is not None and known.topic_id == message.info.topic_id:
            self.topics[message.info.name] = message.info
        return True
