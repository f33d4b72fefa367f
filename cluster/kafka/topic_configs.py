"""Topic configs: which ones this broker honours, their defaults, their valid values, and how a
CreateTopics / AlterConfigs / IncrementalAlterConfigs request changes a topic's set.

Concern: the rules Kafka's `LogConfig` applies to topic-level configs (names, types, bounds),
restricted to the configs this broker acts on, and the pure set arithmetic of the alter APIs
(KIP-133 AlterConfigs replaces the whole set; KIP-339 IncrementalAlterConfigs sets, deletes,
appends to and subtracts from single keys). Must not know: actors, sockets, where topic records
or logs live.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from redshank.cluster.kafka.topic_table import DEFAULT_MAX_MESSAGE_BYTES
from redshank.protocol.error_codes import ErrorCode
from redshank.storage import LogConfig

__all__ = [
    "DEFAULTS",
    "TOPIC_CONFIGS",
    "ConfigChange",
    "ConfigOp",
    "ConfigRefused",
    "ConfigType",
    "ResourceType",
    "apply_change",
    "effective",
    "invalid_value",
]

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# The defaults as applied here: storage's LogConfig (segment size, keep everything).
DEFAULT_SEGMENT_BYTES = LogConfig().segment_bytes


class ConfigType(enum.IntEnum):
    """DescribeConfigs v3+ config_type (KIP-569)."""

    STRING = 2
    INT = 3
    LONG = 5
    LIST = 7


class ResourceType(enum.IntEnum):
    """Config resource types (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs)."""

    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8


class ConfigOp(enum.IntEnum):
    """IncrementalAlterConfigs config_operation (KIP-339)."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


@dataclass(frozen=True, slots=True)
class _Spec:
    default: str
    kind: ConfigType
    # Integers: inclusive bounds. Strings and lists: the allowed values (None: any).
    low: int = 0
    high: int = _INT64_MAX
    choices: frozenset[str] | None = None


_SPECS: dict[str, _Spec] = {
    "cleanup.policy": _Spec("delete", ConfigType.LIST,
                            choices=frozenset({"delete", "compact"})),
    "max.message.bytes": _Spec(str(DEFAULT_MAX_MESSAGE_BYTES), ConfigType.INT, 0, _INT32_MAX),
    "message.timestamp.type": _Spec("CreateTime", ConfigType.STRING,
                                    choices=frozenset({"CreateTime", "LogAppendTime"})),
    # -1: unlimited (Kafka's convention).
    "retention.bytes": _Spec("-1", ConfigType.LONG, -1),
    "retention.ms": _Spec("-1", ConfigType.LONG, -1),
    # Kafka's lower bound: a legacy record's overhead (LegacyRecord.RECORD_OVERHEAD_V0).
    "segment.bytes": _Spec(str(DEFAULT_SEGMENT_BYTES), ConfigType.INT, 14, _INT32_MAX),
    # Long.MAX_VALUE: no time-based roll.
    "segment.ms": _Spec(str(_INT64_MAX), ConfigType.LONG, 1),
}

TOPIC_CONFIGS: frozenset[str] = frozenset(_SPECS)
# name -> (default as applied here, type), for DescribeConfigs.
DEFAULTS: dict[str, tuple[str, ConfigType]] = {n: (s.default, s.kind) for n, s in _SPECS.items()}


def invalid_value(name: str, value: str) -> str | None:
    """Why `value` is not valid for topic config `name` (INVALID_CONFIG), None if it is."""
    spec = _SPECS.get(name)
    if spec is None:
        return f"unknown topic config {name!r}"
    if spec.kind in (ConfigType.INT, ConfigType.LONG):
        try:
            number = int(value.strip())
        except ValueError:
            return f"{name} must be an integer, got {value!r}"
        if not spec.low <= number <= spec.high:
            return f"{name} must be in [{spec.low}, {spec.high}], got {number}"
        return None
    if spec.kind == ConfigType.LIST:
        items = _items(value)
        if not items:
            return f"{name} needs at least one of {sorted(spec.choices or ())}"
        if len(set(items)) != len(items):
            return f"{name} names a value more than once: {value!r}"
        bad = [i for i in items if spec.choices is not None and i not in spec.choices]
        return f"{name} values must be among {sorted(spec.choices or ())}, got {bad}" if bad \
            else None
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {sorted(spec.choices)}, got {value!r}"
    return None


def _items(value: str) -> list[str]:
    return [i.strip() for i in value.split(",") if i.strip()]


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What one request asks of one topic's configs. `replace`: the set becomes exactly `ops`
    (all SET; legacy AlterConfigs); otherwise each op applies to the current set."""

    topic: str
    ops: tuple[tuple[ConfigOp, str, str | None], ...]
    replace: bool


@dataclass(frozen=True, slots=True)
class ConfigRefused:
    error_code: int
    message: str


def apply_change(current: tuple[tuple[str, str], ...], change: ConfigChange
                 ) -> tuple[tuple[str, str], ...] | ConfigRefused:
    """The topic's configs after `change` (sorted by name), or why it is refused. Nothing is
    applied unless every op is valid (Kafka validates the whole resource first)."""
    values: dict[str, str] = {} if change.replace else dict(current)
    for op, name, value in change.ops:
        if name not in _SPECS:
            return ConfigRefused(ErrorCode.INVALID_CONFIG, f"unknown topic config {name!r}")
        refused = _apply_one(values, op, name, value)
        if refused is not None:
            return refused
    for name, value in values.items():
        why = invalid_value(name, value)
        if why is not None:
            return ConfigRefused(ErrorCode.INVALID_CONFIG, why)
    return tuple(sorted(values.items()))


def _apply_one(values: dict[str, str], op: ConfigOp, name: str, value: str | None
               ) -> ConfigRefused | None:
    spec = _SPECS[name]
    if op == ConfigOp.DELETE:
        values.pop(name, None)
        return None
    if value is None:
        return ConfigRefused(ErrorCode.INVALID_REQUEST, f"null value for {name!r}")
    if op == ConfigOp.SET:
        values[name] = value
        return None
    if spec.kind != ConfigType.LIST:
        return ConfigRefused(ErrorCode.INVALID_CONFIG,
                             f"{op.name} needs a list config; {name!r} is not one")
    have = _items(values.get(name, spec.default))
    given = _items(value)
    if op == ConfigOp.APPEND:
        have += [i for i in given if i not in have]
    else:
        have = [i for i in have if i not in given]
    values[name] = ",".join(have)
    return None


def effective(configs: Mapping[str, str], name: str) -> str:
    """The value of `name` on a topic with these set configs (its default when not set)."""
    return configs.get(name, _SPECS[name].default)
