"""What AlterConfigs (33) and IncrementalAlterConfigs (44) share: checking a request's resources,
deciding one topic's change against its record, and the per-resource outcome.

Concern: resource-level rules as Kafka applies them: a resource named twice is refused whole
(INVALID_REQUEST), so is a config key named twice within one resource; topic resources become
`ConfigChange`s for the topic controller; broker resources accept no change (this node's configs
are its start flags: INVALID_REQUEST naming them, as Kafka answers a config it cannot update
dynamically; another node's id is INVALID_REQUEST too); other resource types are
INVALID_REQUEST. Must not know: actors, sockets,
where topic records live.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from redshank.cluster.kafka.broker_configs import refusal
from redshank.cluster.kafka.topic_configs import (
    ConfigChange,
    ConfigOp,
    ConfigRefused,
    ResourceType,
    apply_change,
)
from redshank.cluster.kafka.topic_table import TopicInfo
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["AlterOutcome", "Ops", "Resource", "decide", "plan_resources", "results"]


class _Config(Protocol):
    @property
    def name(self) -> str: ...


class Resource(Protocol):
    """The fields both APIs' request resources have."""

    @property
    def resource_type(self) -> int: ...
    @property
    def resource_name(self) -> str: ...
    @property
    def configs(self) -> Sequence[_Config]: ...


@dataclass(frozen=True, slots=True)
class AlterOutcome:
    error_code: int
    error_message: str | None = None


Ops = tuple[tuple[ConfigOp, str, str | None], ...]
R = TypeVar("R", bound=Resource)


def plan_resources(resources: Sequence[R], ops_of: Callable[[R], Ops | ConfigRefused],
                   replace: bool, node_id: int
                   ) -> tuple[list[ConfigChange], dict[int, AlterOutcome]]:
    """(topic changes for the controller, outcomes already decided by resource index);
    `node_id`: this node's, the broker resource it answers for."""
    named = Counter((r.resource_type, r.resource_name) for r in resources)
    changes: list[ConfigChange] = []
    decided: dict[int, AlterOutcome] = {}
    for i, r in enumerate(resources):
        if named[(r.resource_type, r.resource_name)] > 1:
            decided[i] = AlterOutcome(ErrorCode.INVALID_REQUEST, "resource named more than once")
            continue
        keys = Counter(c.name for c in r.configs)
        twice = sorted(k for k, n in keys.items() if n > 1)
        if twice:
            decided[i] = AlterOutcome(ErrorCode.INVALID_REQUEST, f"duplicate config keys {twice}")
        elif r.resource_type == ResourceType.TOPIC:
            ops = ops_of(r)
            if isinstance(ops, ConfigRefused):
                decided[i] = AlterOutcome(ops.error_code, ops.message)
            else:
                changes.append(ConfigChange(r.resource_name, ops, replace))
        elif r.resource_type == ResourceType.BROKER:
            decided[i] = _broker(r.resource_name, sorted(keys), node_id)
        else:
            decided[i] = AlterOutcome(
                ErrorCode.INVALID_REQUEST,
                f"resource type {r.resource_type} has no alterable configs here")
    return changes, decided


def _broker(name: str, keys: list[str], node_id: int) -> AlterOutcome:
    if name and name != str(node_id):
        return AlterOutcome(ErrorCode.INVALID_REQUEST,
                            f"Unexpected broker id, expected {node_id}, but received {name}")
    if not keys:
        return AlterOutcome(ErrorCode.NONE)
    return AlterOutcome(ErrorCode.INVALID_REQUEST, refusal(keys))


def decide(change: ConfigChange, info: TopicInfo | None, internal: frozenset[str]
           ) -> tuple[tuple[str, str], ...] | AlterOutcome:
    """The topic's new configs, or why the change is refused."""
    if info is None:
        return AlterOutcome(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                            f"topic {change.topic!r} does not exist")
    if change.topic in internal:
        return AlterOutcome(ErrorCode.INVALID_REQUEST,
                            f"internal topic {change.topic!r} keeps its configs")
    after = apply_change(info.configs, change)
    if isinstance(after, ConfigRefused):
        return AlterOutcome(after.error_code, after.message)
    return after


T = TypeVar("T")


def results(resources: Sequence[Resource], decided: dict[int, AlterOutcome],
            by_topic: dict[str, AlterOutcome], make: Callable[..., T]) -> tuple[T, ...]:
    """One response entry per resource, in request order: its outcome decided here, or by the
    controller for its topic. `make` is the API's response-resource class."""
    out = []
    for i, r in enumerate(resources):
        got = decided.get(i) or by_topic.get(
            r.resource_name, AlterOutcome(ErrorCode.UNKNOWN_SERVER_ERROR, "no outcome"))
        out.append(make(error_code=got.error_code, error_message=got.error_message,
                        resource_type=r.resource_type, resource_name=r.resource_name))
    return tuple(out)
