"""DescribeConfigs (32): the topic configs this broker honours, with their defaults.

Concern: answering DescribeConfigs for topic resources from their topic records: every config of
`topic_configs.DEFAULTS` is listed (or only the requested keys), a value set on the topic as
DYNAMIC_TOPIC_CONFIG, otherwise the default this broker actually applies as DEFAULT_CONFIG.
Broker resources have no describable configs yet (an empty list); other resource types are
refused with INVALID_REQUEST. Must not know: actors, sockets, where topic records live.
"""

from __future__ import annotations

import enum

from redshank.cluster.kafka.topic_configs import DEFAULTS, ConfigType, ResourceType
from redshank.cluster.kafka.topic_table import TopicInfo
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import describe_configs as wire

__all__ = ["DEFAULTS", "ConfigSource", "ConfigType", "ResourceType", "build", "topic_names"]


class ConfigSource(enum.IntEnum):
    DYNAMIC_TOPIC_CONFIG = 1
    DEFAULT_CONFIG = 5


def topic_names(request: wire.DescribeConfigsRequest) -> tuple[str, ...]:
    """The topics whose records the response needs."""
    return tuple(dict.fromkeys(r.resource_name for r in request.resources
                               if r.resource_type == ResourceType.TOPIC))


def _entry(name: str, set_value: str | None, version: int) -> wire.DescribeConfigsResourceResult:
    default, kind = DEFAULTS[name]
    source = (ConfigSource.DEFAULT_CONFIG if set_value is None
              else ConfigSource.DYNAMIC_TOPIC_CONFIG)
    value = default if set_value is None else set_value
    return wire.DescribeConfigsResourceResult(
        name=name, value=value, read_only=False, config_source=source, is_sensitive=False,
        synonyms=(),
        config_type=kind if version >= 3 else 0,
        documentation=None if version >= 3 else "")


def _topic(resource: wire.DescribeConfigsResource, info: TopicInfo | None, version: int
           ) -> wire.DescribeConfigsResult:
    if info is None:
        return wire.DescribeConfigsResult(
            error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            error_message=f"topic {resource.resource_name!r} does not exist",
            resource_type=resource.resource_type, resource_name=resource.resource_name)
    wanted = (sorted(DEFAULTS) if resource.configuration_keys is None
              else [k for k in dict.fromkeys(resource.configuration_keys) if k in DEFAULTS])
    values = dict(info.configs)
    return wire.DescribeConfigsResult(
        error_code=ErrorCode.NONE, error_message=None,
        resource_type=resource.resource_type, resource_name=resource.resource_name,
        configs=tuple(_entry(k, values.get(k), version) for k in wanted))


def build(request: wire.DescribeConfigsRequest, version: int,
          topics: dict[str, TopicInfo | None]) -> wire.DescribeConfigsResponse:
    results = []
    for r in request.resources:
        if r.resource_type == ResourceType.TOPIC:
            results.append(_topic(r, topics.get(r.resource_name), version))
        elif r.resource_type == ResourceType.BROKER:
            results.append(wire.DescribeConfigsResult(
                error_code=ErrorCode.NONE, error_message=None,
                resource_type=r.resource_type, resource_name=r.resource_name))
        else:
            results.append(wire.DescribeConfigsResult(
                error_code=ErrorCode.INVALID_REQUEST,
                error_message=f"resource type {r.resource_type} has no configs here",
                resource_type=r.resource_type, resource_name=r.resource_name))
    return wire.DescribeConfigsResponse(results=tuple(results))
