"""Broker configs: the settings of this node under their Kafka names, as DescribeConfigs lists
them for a broker resource, and why an (Incremental)AlterConfigs of one is refused.

Concern: mapping the node's settings (its `redshank start` flags and the defaults it applies) to
Kafka's broker config names, types and sources, including the broker synonyms of the topic
configs (`topic_configs`: log.retention.ms, message.max.bytes, ...), which are the defaults a
topic inherits. Every one is read-only: this broker changes none at run time. Must not know:
actors, sockets, how the settings reach the node.
"""

from __future__ import annotations

from collections.abc import Iterable

from redshank.cluster.kafka.topic_configs import (
    TOPIC_CONFIGS,
    ConfigSource,
    ConfigType,
    info,
)
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["BrokerEntry", "BrokerSettings", "entries", "refusal"]


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """What the node runs with. `explicit`: the Kafka names set by a start flag (described as
    STATIC_BROKER_CONFIG even when equal to Kafka's default)."""

    node_id: int
    listener: str  # host:port
    advertised: str
    data_dir: str
    default_partitions: int
    default_replication_factor: int
    auto_create_topics: bool
    connections_max_idle_ms: int
    queued_max_request_bytes: int
    retention_check_ms: int
    initial_rebalance_delay_ms: int
    fetch_session_slots: int
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BrokerEntry:
    name: str
    value: str
    kind: ConfigType
    source: ConfigSource
    doc: str


# name -> (Kafka's default, type, documentation) of the node settings that are not a topic
# config's synonym.
_KAFKA: dict[str, tuple[str, ConfigType, str]] = {
    "node.id": ("-1", ConfigType.INT, "This node's id."),
    "broker.id": ("-1", ConfigType.INT, "This node's id (node.id's older name)."),
    "listeners": ("PLAINTEXT://:9092", ConfigType.LIST, "Where the Kafka API listens."),
    "advertised.listeners": ("", ConfigType.LIST, "The address given to clients."),
    "log.dirs": ("/tmp/kafka-logs", ConfigType.LIST, "The data directory."),
    "num.partitions": ("1", ConfigType.INT,
                       "Partitions of an auto-created topic or of a CreateTopics asking -1."),
    "default.replication.factor": ("1", ConfigType.INT, "Replicas of an auto-created topic or "
                                   "of a CreateTopics asking -1."),
    "auto.create.topics.enable": ("true", ConfigType.BOOLEAN,
                                  "Whether Metadata creates the topics it names."),
    "connections.max.idle.ms": ("600000", ConfigType.LONG,
                                "Idle connections are closed after this long."),
    "queued.max.request.bytes": ("-1", ConfigType.LONG,
                                 "Bytes of requests not yet decoded a core's connections hold."),
    "log.retention.check.interval.ms": ("300000", ConfigType.LONG,
                                        "How often retention is applied."),
    "group.initial.rebalance.delay.ms": ("3000", ConfigType.INT,
                                         "How long an empty group's first rebalance waits."),
    "max.incremental.fetch.session.cache.slots": ("1000", ConfigType.INT,
                                                  "Incremental fetch sessions kept (per core)."),
}


def _values(s: BrokerSettings) -> dict[str, str]:
    return {
        "node.id": str(s.node_id), "broker.id": str(s.node_id),
        "listeners": f"PLAINTEXT://{s.listener}",
        "advertised.listeners": f"PLAINTEXT://{s.advertised}",
        "log.dirs": s.data_dir,
        "num.partitions": str(s.default_partitions),
        "default.replication.factor": str(s.default_replication_factor),
        "auto.create.topics.enable": str(s.auto_create_topics).lower(),
        "connections.max.idle.ms": str(s.connections_max_idle_ms),
        "queued.max.request.bytes": str(s.queued_max_request_bytes),
        "log.retention.check.interval.ms": str(s.retention_check_ms),
        "group.initial.rebalance.delay.ms": str(s.initial_rebalance_delay_ms),
        "max.incremental.fetch.session.cache.slots": str(s.fetch_session_slots),
    }


def _topic_synonyms() -> list[BrokerEntry]:
    out = []
    for topic_config in sorted(TOPIC_CONFIGS):
        got = info(topic_config)
        assert got is not None
        if got.synonym is not None:
            out.append(BrokerEntry(got.synonym, got.default, got.kind, got.source, got.doc))
    return out


def entries(s: BrokerSettings, keys: Iterable[str] | None = None) -> tuple[BrokerEntry, ...]:
    """The broker configs of this node, sorted by name (only `keys` when given): a setting
    differing from Kafka's default, or set by a flag, is STATIC_BROKER_CONFIG."""
    out = _topic_synonyms()
    for name, value in _values(s).items():
        kafka, kind, doc = _KAFKA[name]
        source = ConfigSource.STATIC_BROKER_CONFIG if value != kafka or name in s.explicit \
            else ConfigSource.DEFAULT_CONFIG
        out.append(BrokerEntry(name, value, kind, source, doc))
    wanted = None if keys is None else set(keys)
    return tuple(sorted((e for e in out if wanted is None or e.name in wanted),
                        key=lambda e: e.name))


# Broker configs Kafka changes at run time (DynamicBrokerConfig: the topic configs' synonyms,
# the log cleaner's, ...): here each is fixed when the node starts.
_DYNAMIC_IN_KAFKA = frozenset(e.name for e in _topic_synonyms())


def refusal(names: Iterable[str]) -> str:
    """The message of INVALID_REQUEST for an alter of broker configs `names` (Kafka answers a
    config it cannot update dynamically with INVALID_REQUEST, KAFKA-13609)."""
    asked = sorted(set(names))
    dynamic = [n for n in asked if n in _DYNAMIC_IN_KAFKA]
    static = [n for n in asked if n not in _DYNAMIC_IN_KAFKA]
    parts = []
    if static:
        parts.append(f"Cannot update these configs dynamically: {static}")
    if dynamic:
        parts.append(f"{dynamic} are fixed when this broker starts; set the topic config "
                     "instead (AlterConfigs on the topic)")
    return "; ".join(parts)
