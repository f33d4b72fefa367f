"""CreateTopics (19): validate each topic spec, then answer from what the topic table did.

Concern: checking names, partition counts, replication factor (one replica on a single node),
explicit replica assignments (cluster mode: their shape here, the brokers by the controller's
placement) and configs before anything is created, and building the per-topic results (the
partition count and replication factor the topic really got). Must not know: how or
where topics are stored, sockets, actors.
"""

from __future__ import annotations

from collections.abc import Mapping

from redshank.cluster.kafka.topic_configs import TOPIC_CONFIGS, invalid_value
from redshank.cluster.kafka.topic_table import TopicInfo, validate_topic_name
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages.create_topics import (
    CreatableTopic,
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
    # Cluster mode: the broker ids of each partition's replicas as the client named them, by
    # partition (None: the controller places them).
    assignments: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    error_code: int
    message: str | None
    info: TopicInfo | None
    replication_factor: int = 1  # what the topic got (a single node: always 1)


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
        if replicated and t.assignments:
            refused = _bad_assignments(t)
            if refused is not None:
                errors[t.name] = refused
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
        assignments = None
        if replicated and t.assignments:
            ordered = sorted(t.assignments, key=lambda a: a.partition_index)
            assignments = tuple(tuple(a.broker_ids) for a in ordered)
        specs.append(TopicSpec(t.name, count, configs, assignments))
    return specs, errors


def _bad_assignments(t: CreatableTopic) -> tuple[int, str] | None:
    """Why a topic's explicit assignments are refused before placement: Kafka's rules (both a
    count and assignments -> INVALID_REQUEST; partitions not 0..n-1 ->
    INVALID_REPLICA_ASSIGNMENT). Brokers and equal lengths are placement's to check."""
    if t.num_partitions != -1 or t.replication_factor != -1:
        return (ErrorCode.INVALID_REQUEST, "both numPartitions or replicationFactor and "
                "replicasAssignments were set; both cannot be used at the same time")
    indices = sorted(a.partition_index for a in t.assignments)
    if indices != list(range(len(indices))):
        return (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"partitions {indices}: assignments must cover partitions 0 to "
                f"{len(indices) - 1} once each")
    return None


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
                replication_factor=out.replication_factor if info is not None else -1,
                configs=None if info is None else (),
            )
        )
    return CreateTopicsResponse(topics=tuple(results))
