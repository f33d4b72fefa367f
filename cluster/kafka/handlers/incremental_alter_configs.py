"""IncrementalAlterConfigs (44, KIP-339): set, delete, append to or subtract from single configs.

Concern: turning the request into one `ConfigChange` per topic resource (an unknown operation is
INVALID_REQUEST) and building the per-resource response. How each operation changes the set is
`topic_configs.apply_change`; resource-level rules are `_alter`. Must not know: actors, sockets,
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
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import incremental_alter_configs as wire

__all__ = ["build", "plan"]

_OPS = frozenset(int(op) for op in ConfigOp)


def _ops(resource: wire.AlterConfigsResource) -> Ops | ConfigRefused:
    configs = resource.configs
    for c in configs:
        if c.config_operation not in _OPS:
            return ConfigRefused(ErrorCode.INVALID_REQUEST,
                                 f"unknown config operation {c.config_operation} for {c.name!r}")
    return tuple((ConfigOp(c.config_operation), c.name, c.value) for c in configs)


def plan(request: wire.IncrementalAlterConfigsRequest, node_id: int
         ) -> tuple[list[ConfigChange], dict[int, AlterOutcome]]:
    return plan_resources(request.resources, _ops, replace=False, node_id=node_id)


def build(request: wire.IncrementalAlterConfigsRequest, decided: dict[int, AlterOutcome],
          by_topic: dict[str, AlterOutcome]) -> wire.IncrementalAlterConfigsResponse:
    return wire.IncrementalAlterConfigsResponse(responses=results(
        request.resources, decided, by_topic, wire.AlterConfigsResourceResponse))
