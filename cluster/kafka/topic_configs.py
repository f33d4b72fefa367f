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
import re
from collections.abc import Callable, Mapping

from redshank.cluster.kafka.topic_table import DEFAULT_MAX_MESSAGE_BYTES
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.storage import LogConfig

__all__ = [
    "DEFAULTS",
    "TOPIC_CONFIGS",
    "ConfigChange",
    "ConfigInfo",
    "ConfigOp",
    "ConfigRefused",
    "ConfigSource",
    "ConfigType",
    "ResourceType",
    "apply_change",
    "effective",
    "info",
    "invalid_set",
    "invalid_value",
    "stored_codec",
    "timestamp_refusal",
    "timestamp_window",
]

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# The defaults as applied here: storage's LogConfig (segment size, keep everything).
DEFAULT_SEGMENT_BYTES = LogConfig().segment_bytes


class ConfigType(enum.IntEnum):
    """DescribeConfigs v3+ config_type (KIP-569): Kafka's `ConfigDef.Type` as a wire code."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ResourceType(enum.IntEnum):
    """Config resource types (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs)."""

    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8


class ConfigSource(enum.IntEnum):
    """DescribeConfigs v1+ config_source and synonym source (KIP-226)."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


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
    doc: str
    # The broker config of highest priority a topic inherits the value from when the topic does
    # not set it (Kafka's ServerTopicConfigSynonyms.TOPIC_CONFIG_SYNONYMS); None: no synonym.
    synonym: str | None
    # Numbers: inclusive bounds. Strings and lists: the allowed values (None: any).
    low: float = -_INT64_MAX - 1
    high: float = _INT64_MAX
    choices: frozenset[str] | None = None
    # A validator Kafka writes as its own class (levels, versions, replica lists).
    check: Callable[[str, str], str | None] | None = None
    # Kafka's default where this broker applies another (`default`): the broker's synonym is
    # then described as a static broker setting, as on a Kafka broker whose server.properties
    # sets it.
    kafka: str | None = None


def _gzip_level(name: str, value: str) -> str | None:
    # Kafka's GzipCompression.levelValidator: 1..9, or -1 (the library's default).
    level = int(value.strip())
    return None if 1 <= level <= 9 or level == -1 else \
        f"{name} must be in [1, 9] or -1, got {level}"


# Kafka's MetadataVersionValidator accepts the version strings of MetadataVersion: "0.8.0" to
# "2.8", "3.0-IV1", ... Any one names a record format no older than v2 for a 3.x broker.
_VERSION = re.compile(r"^(0\.(8|9|10|11)(\.\d+)?|[123]\.\d+)(-IV\d+)?$")


def _format_version(name: str, value: str) -> str | None:
    return None if _VERSION.match(value.strip()) else \
        f"{name} must be a Kafka version such as 3.0-IV1, got {value!r}"


# Kafka's ThrottledReplicaListValidator: "*", or partition:broker pairs.
_PAIR = re.compile(r"^\d+:\d+$")


def _throttled(name: str, value: str) -> str | None:
    items = _items(value)
    if items == ["*"] or all(_PAIR.match(i) for i in items):
        return None
    return f"{name} must be '*' or a list of partition:broker, got {value!r}"


def _remote_storage(name: str, value: str) -> str | None:
    # Kafka: "Tiered Storage functionality is disabled in the broker" (remote.log.storage.
    # system.enable=false); this broker has no remote tier.
    return f"{name}=true needs tiered storage, which this broker does not have" \
        if value.strip().lower() == "true" else None


_DAY_MS = 24 * 3600 * 1000
_POLICIES = frozenset({"delete", "compact"})
_CODECS = frozenset({"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"})
_T = ConfigType

# Every topic config of Kafka 3.9's LogConfig, with the bounds and validators it defines. The
# defaults are Kafka's except where this broker applies another (retention: keep everything;
# segment.ms: no time-based roll; segment.bytes: storage's segment size), so DescribeConfigs
# shows what is in force.
_SPECS: dict[str, _Spec] = {
    "cleanup.policy": _Spec("delete", _T.LIST, "delete: old segments are removed by retention; "
                            "compact: the latest record per key is kept.", "log.cleanup.policy",
                            choices=_POLICIES),
    "compression.type": _Spec("producer", _T.STRING, "The codec the broker stores batches in; "
                              "producer: as the producer sent them.", "compression.type",
                              choices=_CODECS),
    "compression.gzip.level": _Spec("-1", _T.INT, "The gzip level when compression.type is "
                                    "gzip.", "compression.gzip.level", check=_gzip_level,
                                    low=-(2**31), high=_INT32_MAX),
    "compression.lz4.level": _Spec("9", _T.INT, "The lz4 level when compression.type is lz4.",
                                   "compression.lz4.level", 1, 17),
    "compression.zstd.level": _Spec("3", _T.INT, "The zstd level when compression.type is "
                                    "zstd.", "compression.zstd.level", -131072, 22),
    "delete.retention.ms": _Spec(str(_DAY_MS), _T.LONG, "How long tombstones are kept on a "
                                 "compacted topic.", "log.cleaner.delete.retention.ms", 0),
    "file.delete.delay.ms": _Spec("60000", _T.LONG, "How long a deleted segment's file stays.",
                                  "log.segment.delete.delay.ms", 0),
    "flush.messages": _Spec(str(_INT64_MAX), _T.LONG, "Records between forced fsyncs.",
                            "log.flush.interval.messages", 1),
    "flush.ms": _Spec(str(_INT64_MAX), _T.LONG, "Milliseconds between forced fsyncs.",
                      "log.flush.interval.ms", 0),
    "follower.replication.throttled.replicas": _Spec(
        "", _T.LIST, "Replicas whose follower-side replication is throttled.", None,
        check=_throttled),
    "index.interval.bytes": _Spec("4096", _T.INT, "Bytes between offset index entries.",
                                  "log.index.interval.bytes", 0, _INT32_MAX),
    "leader.replication.throttled.replicas": _Spec(
        "", _T.LIST, "Replicas whose leader-side replication is throttled.", None,
        check=_throttled),
    "local.retention.bytes": _Spec("-2", _T.LONG, "Bytes kept locally with tiered storage "
                                   "(-2: retention.bytes).", "log.local.retention.bytes", -2),
    "local.retention.ms": _Spec("-2", _T.LONG, "Milliseconds kept locally with tiered storage "
                                "(-2: retention.ms).", "log.local.retention.ms", -2),
    "max.compaction.lag.ms": _Spec(str(_INT64_MAX), _T.LONG, "The longest a record stays "
                                   "uncompacted.", "log.cleaner.max.compaction.lag.ms", 1),
    "max.message.bytes": _Spec(str(DEFAULT_MAX_MESSAGE_BYTES), _T.INT, "The largest record "
                               "batch the topic accepts.", "message.max.bytes", 0, _INT32_MAX),
    "message.downconversion.enable": _Spec("true", _T.BOOLEAN, "Whether old fetch versions get "
                                           "down-converted records.",
                                           "log.message.downconversion.enable"),
    "message.format.version": _Spec("3.0-IV1", _T.STRING, "Deprecated: the record format "
                                    "version (ignored for 3.0+).",
                                    "log.message.format.version", check=_format_version),
    "message.timestamp.after.max.ms": _Spec(str(_INT64_MAX), _T.LONG, "How far in the future "
                                            "a CreateTime timestamp may be.",
                                            "log.message.timestamp.after.max.ms", 0),
    "message.timestamp.before.max.ms": _Spec(str(_INT64_MAX), _T.LONG, "How far in the past "
                                             "a CreateTime timestamp may be.",
                                             "log.message.timestamp.before.max.ms", 0),
    "message.timestamp.difference.max.ms": _Spec(
        str(_INT64_MAX), _T.LONG, "Deprecated: see message.timestamp.before.max.ms.",
        "log.message.timestamp.difference.max.ms", 0),
    "message.timestamp.type": _Spec("CreateTime", _T.STRING, "CreateTime: the producer's "
                                    "timestamp; LogAppendTime: the broker's.",
                                    "log.message.timestamp.type",
                                    choices=frozenset({"CreateTime", "LogAppendTime"})),
    "min.cleanable.dirty.ratio": _Spec("0.5", _T.DOUBLE, "The dirty share of a log that makes "
                                       "it due for compaction.",
                                       "log.cleaner.min.cleanable.ratio", 0, 1),
    "min.compaction.lag.ms": _Spec("0", _T.LONG, "The least time a record stays uncompacted.",
                                   "log.cleaner.min.compaction.lag.ms", 0),
    "min.insync.replicas": _Spec("1", _T.INT, "Replicas that must have a record for an acks=all "
                                 "produce.", "min.insync.replicas", 1, _INT32_MAX),
    "preallocate": _Spec("false", _T.BOOLEAN, "Whether segment files are preallocated.",
                         "log.preallocate"),
    "remote.log.copy.disable": _Spec("false", _T.BOOLEAN, "Stop copying to tiered storage.",
                                     None),
    "remote.log.delete.on.disable": _Spec("false", _T.BOOLEAN, "Delete tiered data when tiered "
                                          "storage is turned off.", None),
    "remote.storage.enable": _Spec("false", _T.BOOLEAN, "Tiered storage for the topic.", None,
                                   check=_remote_storage),
    # -1: unlimited (Kafka's convention; Kafka does not bound retention.bytes below).
    "retention.bytes": _Spec("-1", _T.LONG, "Bytes a partition keeps before old segments are "
                             "removed (-1: no limit).", "log.retention.bytes"),
    "retention.ms": _Spec("-1", _T.LONG, "How long records are kept (-1: forever).",
                          "log.retention.ms", -1, kafka=str(7 * _DAY_MS)),
    # Kafka's lower bound: a legacy record's overhead (LegacyRecord.RECORD_OVERHEAD_V0).
    "segment.bytes": _Spec(str(DEFAULT_SEGMENT_BYTES), _T.INT, "The size a segment rolls at.",
                           "log.segment.bytes", 14, _INT32_MAX, kafka=str(2**30)),
    "segment.index.bytes": _Spec(str(10 * 1024 * 1024), _T.INT, "The size of a segment's offset "
                                 "index.", "log.index.size.max.bytes", 4, _INT32_MAX),
    "segment.jitter.ms": _Spec("0", _T.LONG, "Random jitter subtracted from segment.ms.",
                               "log.roll.jitter.ms", 0),
    # Long.MAX_VALUE: no time-based roll.
    "segment.ms": _Spec(str(_INT64_MAX), _T.LONG, "The age a segment rolls at.", "log.roll.ms",
                        1, kafka=str(7 * _DAY_MS)),
    "unclean.leader.election.enable": _Spec("false", _T.BOOLEAN, "Whether a replica out of sync "
                                            "may become leader.",
                                            "unclean.leader.election.enable"),
}

TOPIC_CONFIGS: frozenset[str] = frozenset(_SPECS)
# name -> (default as applied here, type), for DescribeConfigs.
DEFAULTS: dict[str, tuple[str, ConfigType]] = {n: (s.default, s.kind) for n, s in _SPECS.items()}
_INTS = {_T.INT: (-(2**31), _INT32_MAX), _T.SHORT: (-(2**15), 2**15 - 1),
         _T.LONG: (-_INT64_MAX - 1, _INT64_MAX)}
_BITS = {_T.INT: 32, _T.SHORT: 16, _T.LONG: 64}  # Kafka's "Expected value to be a 32-bit integer"
_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True, slots=True)
class ConfigInfo:
    """What DescribeConfigs tells of one topic config besides a value set on the topic."""

    default: str  # as applied here when the topic does not set it
    kind: ConfigType
    doc: str
    synonym: str | None  # the broker config the default comes from (Kafka's name)
    # Where the default comes from: Kafka's own default, or (a value of ours) this broker's.
    source: ConfigSource
    kafka_default: str


def info(name: str) -> ConfigInfo | None:
    spec = _SPECS.get(name)
    if spec is None:
        return None
    source = ConfigSource.DEFAULT_CONFIG if spec.kafka is None \
        else ConfigSource.STATIC_BROKER_CONFIG
    return ConfigInfo(spec.default, spec.kind, spec.doc, spec.synonym, source,
                      spec.kafka or spec.default)


def invalid_value(name: str, value: str) -> str | None:
    """Why `value` is not valid for topic config `name` (INVALID_CONFIG), None if it is: parsed
    as Kafka's ConfigDef parses the config's type (trimmed), then checked by its validator."""
    spec = _SPECS.get(name)
    if spec is None:
        return f"unknown topic config {name!r}"
    why = _invalid_typed(name, value.strip(), spec)
    if why is None and spec.check is not None:
        why = spec.check(name, value)
    return why


def _invalid_typed(name: str, value: str, spec: _Spec) -> str | None:
    if spec.kind in _INTS:
        lo, hi = _INTS[spec.kind]
        if not _INTEGER.match(value) or not lo <= int(value) <= hi:
            return f"{name} must be a {_BITS[spec.kind]}-bit integer, got {value!r}"
        return _out_of_range(name, int(value), spec)
    if spec.kind == _T.DOUBLE:
        try:
            number = float(value) if "_" not in value else float("nan")
        except ValueError:
            number = float("nan")
        if number != number:  # NaN: not a number Kafka's Range accepts here
            return f"{name} must be a number, got {value!r}"
        return _out_of_range(name, number, spec)
    if spec.kind == _T.BOOLEAN:
        return None if value.lower() in ("true", "false") else \
            f"{name} must be true or false, got {value!r}"
    if spec.kind == _T.LIST:
        items = _items(value)
        if spec.choices is None:
            return None
        if not items:
            return f"{name} needs at least one of {sorted(spec.choices)}"
        if len(set(items)) != len(items):
            return f"{name} names a value more than once: {value!r}"
        bad = [i for i in items if i not in spec.choices]
        return f"{name} values must be among {sorted(spec.choices)}, got {bad}" if bad else None
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {sorted(spec.choices)}, got {value!r}"
    return None


def _out_of_range(name: str, number: float, spec: _Spec) -> str | None:
    if spec.low <= number <= spec.high:
        return None
    low, high, got = (_text(n) for n in (spec.low, spec.high, number))
    return f"{name} must be in [{low}, {high}], got {got}"


def _text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def invalid_set(values: Mapping[str, str]) -> str | None:
    """Why a topic's whole set of configs is refused though each value is valid (Kafka's
    LogConfig.validateValues), None if it is not."""
    low = int(effective(values, "min.compaction.lag.ms"))
    high = int(effective(values, "max.compaction.lag.ms"))
    if low > high:
        return (f"conflict topic config setting min.compaction.lag.ms ({low}) > "
                f"max.compaction.lag.ms ({high})")
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
    why = invalid_set(values)
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


def timestamp_window(configs: tuple[tuple[str, str], ...]) -> tuple[int, int] | None:
    """(before, after): how far a CreateTime timestamp may lie behind and ahead of the broker's
    clock on a topic with these set configs; None when nothing is bounded (the usual case, or
    LogAppendTime, which overwrites the timestamps). As Kafka 3.9's LogConfig: each falls back
    to the deprecated message.timestamp.difference.max.ms while left at Long.MAX_VALUE."""
    if not configs:
        return None
    values = dict(configs)
    if effective(values, "message.timestamp.type") == "LogAppendTime":
        return None
    difference = int(effective(values, "message.timestamp.difference.max.ms"))
    before = int(effective(values, "message.timestamp.before.max.ms"))
    after = int(effective(values, "message.timestamp.after.max.ms"))
    window = (before if before != _INT64_MAX else difference,
              after if after != _INT64_MAX else difference)
    return None if window == (_INT64_MAX, _INT64_MAX) else window


def timestamp_refusal(window: tuple[int, int], timestamps: tuple[int, ...], now_ms: int
                      ) -> str | None:
    """Why a batch with these record timestamps is INVALID_TIMESTAMP, None if it is not."""
    before, after = window
    for ts in timestamps:
        if now_ms - ts > before or ts - now_ms > after:
            return (f"Timestamp {ts} of message is out of range. The timestamp should be within "
                    f"[{now_ms - before}, {now_ms + after}]")
    return None


def stored_codec(configs: tuple[tuple[str, str], ...]) -> tuple[str, int | None] | None:
    """(codec, level) the broker stores a topic's batches in, per its compression.type; None
    for `producer` (kept as sent). The level is the topic's compression.<codec>.level when set
    (gzip's -1 is the library's default), else None: the codec's default here."""
    if not configs:
        return None
    values = dict(configs)
    codec = effective(values, "compression.type").strip()
    if codec == "producer":
        return None
    raw = values.get(f"compression.{codec}.level")
    level = None if raw is None or int(raw) == -1 else int(raw)
    return codec, level
