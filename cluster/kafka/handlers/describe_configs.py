"""DescribeConfigs (32): a topic's configs with their sources and synonyms, and this broker's.

Concern: answering DescribeConfigs from topic records and the node's settings. A topic resource
lists every Kafka topic config (`topic_configs`; or only the requested keys): a value set on the
topic as DYNAMIC_TOPIC_CONFIG, otherwise the default this broker applies, as DEFAULT_CONFIG when
it is Kafka's default and STATIC_BROKER_CONFIG when the broker applies its own (as a Kafka
broker whose server.properties sets the synonym). With include_synonyms each entry lists its
synonyms in precedence order (the topic's value, then the broker config it inherits from, as
Kafka's ConfigHelper does). A broker resource named by this node's id lists its settings
(`broker_configs`); an empty name (cluster-wide dynamic defaults) lists none; another id is
INVALID_REQUEST, as in Kafka. Must not know: actors, sockets, where topic records live.
"""

from __future__ import annotations

from redshank.cluster.kafka.broker_configs import BrokerSettings, entries
from redshank.cluster.kafka.topic_configs import (
    DEFAULTS,
    ConfigSource,
    ConfigType,
    ResourceType,
    info,
)
from redshank.cluster.kafka.topic_table import TopicInfo
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import describe_configs as wire

__all__ = ["DEFAULTS", "ConfigSource", "ConfigType", "ResourceType", "build", "topic_names"]

_Entry = wire.DescribeConfigsResourceResult
_Synonym = wire.DescribeConfigsSynonym


def topic_names(request: wire.DescribeConfigsRequest) -> tuple[str, ...]:
    """The topics whose records the response needs."""
    return tuple(dict.fromkeys(r.resource_name for r in request.resources
                               if r.resource_type == ResourceType.TOPIC))


def _entry(name: str, value: str | None, source: ConfigSource, kind: ConfigType, doc: str,
           synonyms: tuple[_Synonym, ...], read_only: bool, request: wire.DescribeConfigsRequest,
           version: int) -> _Entry:
    return _Entry(
        name=name, value=value, read_only=read_only,
        is_default=version == 0 and source == ConfigSource.DEFAULT_CONFIG,
        config_source=source, is_sensitive=False,
        synonyms=synonyms if request.include_synonyms and version >= 1 else (),
        config_type=kind if version >= 3 else 0,
        documentation=doc if request.include_documentation and version >= 3 else None)


def _topic_entry(name: str, set_value: str | None, request: wire.DescribeConfigsRequest,
                 version: int) -> _Entry:
    about = info(name)
    assert about is not None
    synonyms: list[_Synonym] = []
    if set_value is not None:
        synonyms.append(_Synonym(name, set_value, ConfigSource.DYNAMIC_TOPIC_CONFIG))
    if about.synonym is not None:
        synonyms.append(_Synonym(about.synonym, about.default, about.source))
        if about.source != ConfigSource.DEFAULT_CONFIG:  # Kafka's default below the broker's
            synonyms.append(_Synonym(about.synonym, about.kafka_default,
                                     ConfigSource.DEFAULT_CONFIG))
    if set_value is None:
        value, source = about.default, about.source
    else:
        value, source = set_value, ConfigSource.DYNAMIC_TOPIC_CONFIG
    # Topic configs are all alterable (read_only false), whatever their source.
    return _entry(name, value, source, about.kind, about.doc, tuple(synonyms), False, request,
                  version)


def _topic(resource: wire.DescribeConfigsResource, topic: TopicInfo | None,
           request: wire.DescribeConfigsRequest, version: int) -> wire.DescribeConfigsResult:
    if topic is None:
        return wire.DescribeConfigsResult(
            error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            error_message=f"topic {resource.resource_name!r} does not exist",
            resource_type=resource.resource_type, resource_name=resource.resource_name)
    wanted = (sorted(DEFAULTS) if resource.configuration_keys is None
              else [k for k in dict.fromkeys(resource.configuration_keys) if k in DEFAULTS])
    values = dict(topic.configs)
    return wire.DescribeConfigsResult(
        error_code=ErrorCode.NONE, error_message=None,
        resource_type=resource.resource_type, resource_name=resource.resource_name,
        configs=tuple(_topic_entry(k, values.get(k), request, version) for k in wanted))


def _broker(resource: wire.DescribeConfigsResource, broker: BrokerSettings,
            request: wire.DescribeConfigsRequest, version: int) -> wire.DescribeConfigsResult:
    name = resource.resource_name
    if name and name != str(broker.node_id):
        return wire.DescribeConfigsResult(
            error_code=ErrorCode.INVALID_REQUEST,
            error_message=f"Unexpected broker id, expected {broker.node_id} or empty string, "
                          f"but received {name}",
            resource_type=resource.resource_type, resource_name=name)
    listed = entries(broker, resource.configuration_keys) if name else ()
    # Read-only: this broker changes none of its settings at run time.
    configs = tuple(
        _entry(e.name, e.value, e.source, e.kind, e.doc,
               (_Synonym(e.name, e.value, e.source),), True, request, version)
        for e in listed)
    return wire.DescribeConfigsResult(
        error_code=ErrorCode.NONE, error_message=None, resource_type=resource.resource_type,
        resource_name=name, configs=configs)


def build(request: wire.DescribeConfigsRequest, version: int,
          topics: dict[str, TopicInfo | None], broker: BrokerSettings
          ) -> wire.DescribeConfigsResponse:
    results = []
    for r in request.resources:
        if r.resource_type == ResourceType.TOPIC:
            results.append(_topic(r, topics.get(r.resource_name), request, version))
        elif r.resource_type == ResourceType.BROKER:
            results.append(_broker(r, broker, request, version))
        else:
            results.append(wire.DescribeConfigsResult(
                error_code=ErrorCode.INVALID_REQUEST,
                error_message=f"resource type {r.resource_type} has no configs here",
                resource_type=r.resource_type, resource_name=r.resource_name))
    return wire.DescribeConfigsResponse(results=tuple(results))
