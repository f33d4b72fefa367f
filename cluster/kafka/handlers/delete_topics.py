"""DeleteTopics (20): which topics a request names, and the response for their outcomes.

Concern: v1-5 name topics (`topic_names`), v6 names them or gives their ids (`topics`); `plan`
turns either into `DeleteTarget`s (distinct, request order) and `decide` says what happens to
one target given the topic table (unknown -> UNKNOWN_TOPIC_OR_PARTITION, or UNKNOWN_TOPIC_ID for
an id; the internal groups topic is refused). `build` makes the response. Must not know:
actors, sockets, where logs live.
"""

from __future__ import annotations

import uuid

from redshank.cluster.kafka.topic_table import TopicInfo, TopicTable
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages import delete_topics as wire

__all__ = ["DeleteOutcome", "DeleteTarget", "build", "decide", "plan"]

_NO_ID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class DeleteTarget:
    name: str | None
    topic_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    name: str | None
    topic_id: uuid.UUID
    error_code: int
    error_message: str | None = None


def plan(request: wire.DeleteTopicsRequest, version: int) -> list[DeleteTarget]:
    if version < 6:
        targets = [DeleteTarget(n) for n in request.topic_names]
    else:
        targets = [DeleteTarget(t.name, None if t.topic_id == _NO_ID else t.topic_id)
                   for t in request.topics]
    return list(dict.fromkeys(targets))


def decide(target: DeleteTarget, table: TopicTable, internal: frozenset[str]
           ) -> TopicInfo | DeleteOutcome:
    """The topic to delete, or the outcome that refuses the target."""
    if target.name is not None:
        info = table.get(target.name)
        if info is None or (target.topic_id is not None and info.topic_id != target.topic_id):
            return DeleteOutcome(target.name, target.topic_id or _NO_ID,
                                 ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                 f"topic {target.name!r} does not exist")
    else:
        info = table.by_id(target.topic_id) if target.topic_id is not None else None
        if info is None:
            return DeleteOutcome(None, target.topic_id or _NO_ID, ErrorCode.UNKNOWN_TOPIC_ID,
                                 f"no topic has id {target.topic_id}")
    if info.name in internal:
        return DeleteOutcome(info.name, info.topic_id, ErrorCode.INVALID_REQUEST,
                             f"internal topic {info.name!r} cannot be deleted")
    return info


def build(outcomes: list[DeleteOutcome], version: int) -> wire.DeleteTopicsResponse:
    return wire.DeleteTopicsResponse(responses=tuple(
        wire.DeletableTopicResult(
            name=o.name if version >= 6 else (o.name or ""),
            topic_id=o.topic_id if version >= 6 else _NO_ID,
            error_code=o.error_code,
            error_message=o.error_message if version >= 5 else None)
        for o in outcomes))
