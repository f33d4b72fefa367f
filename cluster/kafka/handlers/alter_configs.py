"""AlterConfigs (33, KIP-133 legacy form): a topic's configs become exactly the ones given.

Concern: turning the request into one replacing `ConfigChange` per topic resource (entries with a
null value are dropped, as Kafka does) and building the per-resource response. The rules of the
values are `topic_configs`; resource-level rules are `_alter`. Must not know: actors, sockets,
where topic records live.
"""

from __future__ import annotations

from redshank.cluster.kafka.handlers._alter import (
    AlterOutcome,
    Ops,
    plan_resources,
    results,
)
from redshank.cluster.kafka.topic_configs import ConfigChange, ConfigOp, ConfigRefused
from redshank.protocol.messages import alter_configs as wire

__all__ = ["AlterOutcome", "build", "plan"]


def _ops(resource: wire.AlterConfigsResource) -> Ops | ConfigRefused:
    configs = resource.configs
    return tuple((ConfigOp.SET, c.name, c.value) for c in configs if c.value is not None)


def plan(request: wire.AlterConfigsRequest, node_id: int
         ) -> tuple[list[ConfigChange], dict[int, AlterOutcome]]:
    return plan_resources(request.resources, _ops, replace=True, node_id=node_id)


def build(request: wire.AlterConfigsRequest, decided: dict[int, AlterOutcome],
          by_topic: dict[str, AlterOutcome]) -> wire.AlterConfigsResponse:
    return wire.AlterConfigsResponse(responses=results(
        request.resources, decided, by_topic, wire.AlterConfigsResourceResponse))
