"""CreateTopics (19): validate each topic spec, then answer from what the topic table did.

Concern: checking names, partition counts, replication factor (one replica on a single node) and
configs before anything is created, and building the per-topic results. Must not know: how or
where topics are stored, sockets, actors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redshank.cluster.kafka.topic_configs import TOPIC_CONFIGS, invalid_value
from redshank.cluster.kafka.topic_table import TopicInfo, validate_topic_name
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.create_topics import (
    CreatableTopicResult,
    CreateTopicsRequest,
    CreateTopicsResponse,
)

__all__ = ["TOPIC_CONFIGS", "CreateOutcome", "TopicSpec", "build", "plan"]

MAX_PARTITIONS = 10_000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    error_code: int
    message: str | None
    info: TopicInfo | None


def plan(request: CreateTopicsRequest, default_partitions: int, *, replicated: bool = False
         ) -> tuple[list[TopicSpec], dict[str, tuple[int, str]]]:
    """(specs to create, errors by name). Duplicated names are all rejected, as Kafka does.
    `replicated`: the controller places replicas over the cluster's nodes (it checks the
    replication factor); else this node is the only broker."""
    seen: dict[str, int] = {}
    for t in request.topics:
        seen[t.name] = seen.get(t.name, 0) + 1
    specs: list[TopicSpec] = []
    errors: dict[str, tuple[int, str]] = {}
    for t in request.topics:
        if seen[t.name] > 1:
            errors[t.name] = (ErrorCode.INVALID_REQUEST, "topic named more than once")
            continue
        why = validate_topic_name(t.name)
        if why is not None:
            errors[t.name] = (ErrorCode.INVALID_TOPIC_EXCEPTION, why)
            continue
        count = len(t.assignments) if t.assignments else t.num_partitions
        if count == -1:
            count = default_partitions
        if not 1 <= count <= MAX_PARTITIONS:
            errors[t.name] = (ErrorCode.INVALID_PARTITIONS, f"{count} partitions")
            continue
        if not replicated and t.replication_factor not in (-1, 1) and not t.assignments:
            errors[t.name] = (
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"replication factor {t.replication_factor}: this node is the only broker",
            )
            continue
        bad = _bad_config(t.configs)
        if bad is not None:
            errors[t.name] = (ErrorCode.INVALID_CONFIG, bad)
            continue
        configs = tuple((c.name, c.value) for c in t.configs if c.value is not None)
        specs.append(TopicSpec(t.name, count, configs))
    return specs, errors


def _bad_config(configs: tuple[object, ...]) -> str | None:
    """Why the configs of a creatable topic are refused (INVALID_CONFIG): an unknown name, a
    name given twice, or a value outside what the config allows (topic_configs)."""
    seen: set[str] = set()
    for c in configs:
        name = getattr(c, "name", "")
        value = getattr(c, "value", None)
        if name not in TOPIC_CONFIGS:
            return f"unknown topic config {name!r}"
        if name in seen:
            return f"topic config {name!r} given more than once"
        seen.add(name)
        if value is not None and (why := invalid_value(name, value)) is not None:
            return why
    return None


def build(
    request: CreateTopicsRequest,
    errors: Mapping[str, tuple[int, str]],
    outcomes: Mapping[str, CreateOutcome],
) -> CreateTopicsResponse:
    results = []
    for t in request.topics:
        if t.name in errors:
            code, msg = errors[t.name]
            results.append(CreatableTopicResult(name=t.name, error_code=code, error_message=msg))
            continue
        out = outcomes[t.name]
        info = out.info
        results.append(
            CreatableTopicResult(
                name=t.name,
                topic_id=info.topic_id if info is not None else CreatableTopicResult().topic_id,
                error_code=out.error_code,
                error_message=out.message,
                num_partitions=info.partitions if info is not None else -1,
                replication_factor=1 if info is not None else -1,
                configs=None if info is None else (),
            )
        )
    return CreateTopicsResponse(topics=tuple(results))
