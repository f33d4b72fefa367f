"""The topic cache of a core: the topic records this core's sessions plan requests against.

Concern: one dict per core, `topics` (name -> TopicInfo), filled by lookups at the topic
controller and kept current by the controller's `TopicChanged` (sent to every core before an
alter of a topic's configs is answered, so a produce on any core checks the new
max.message.bytes). Must not know: Kafka requests, sessions, logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redshank.actors.runtime import LoopActor
from redshank.cluster.kafka import TopicInfo

__all__ = ["TOPIC_CACHE", "TopicCache", "TopicChanged"]

TOPIC_CACHE = "topic-cache"


@dataclass(frozen=True, slots=True)
class TopicChanged:
    info: TopicInfo


class TopicCache(LoopActor):
    def __init__(self, topics: dict[str, TopicInfo]) -> None:
        super().__init__()
        self.topics = topics

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, TopicChanged):
            raise TypeError(f"topic cache got {type(message).__name__}")
        known = self.topics.get(message.info.name)
        # Only a record this core already uses is replaced: one it never looked up is fetched
        # fresh when first needed, and one of an older incarnation (deleted, created again
        # under the same name) is left for the lookup that replaces it.
        if known is not None and known.topic_id == message.info.topic_id:
            self.topics[message.info.name] = message.info
        return True
