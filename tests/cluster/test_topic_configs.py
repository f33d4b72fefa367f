"""Topic configs (values, the alter set arithmetic) and the AlterConfigs / IncrementalAlterConfigs
handlers: what each request asks of each resource, what is refused before the controller sees it,
and responses that encode at every advertised version."""

from __future__ import annotations

import uuid

import pytest

from redshank.cluster.kafka.handlers import alter_configs, create_topics, incremental_alter_configs
from redshank.cluster.kafka.handlers._alter import AlterOutcome, decide
from redshank.cluster.kafka.topic_configs import (
    DEFAULTS,
    ConfigChange,
    ConfigOp,
    ConfigRefused,
    apply_change,
    effective,
    invalid_value,
)
from redshank.cluster.kafka.topic_table import TopicInfo
from redshank.protocol.api_versions import ADVERTISED, ApiKey
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import alter_configs as ac_wire
from redshank.protocol.messages import create_topics as ct_wire
from redshank.protocol.messages import incremental_alter_configs as iac_wire

SET, DELETE, APPEND, SUBTRACT = ConfigOp.SET, ConfigOp.DELETE, ConfigOp.APPEND, ConfigOp.SUBTRACT
INTERNAL = frozenset({"__consumer_offsets"})


def _versions(key: ApiKey) -> range:
    lo, hi = ADVERTISED[key]
    return range(lo, hi + 1)


@pytest.mark.parametrize(("name", "value"), [
    ("retention.ms", "-1"), ("retention.ms", "0"), ("retention.ms", str(2**63 - 1)),
    ("retention.bytes", "1048576"), ("segment.bytes", "14"), ("segment.bytes", str(2**31 - 1)),
    ("segment.ms", "1"), ("max.message.bytes", "0"), ("cleanup.policy", "delete"),
    ("cleanup.policy", "compact,delete"), ("cleanup.policy", " compact , delete "),
    ("message.timestamp.type", "LogAppendTime"), ("message.timestamp.type", "CreateTime"),
    # Every other Kafka 3.9 topic config, by type: parsed as Kafka's ConfigDef parses (trimmed,
    # booleans in any case, a sign allowed on integers).
    ("unclean.leader.election.enable", " TRUE "), ("preallocate", "false"),
    ("min.cleanable.dirty.ratio", "0"), ("min.cleanable.dirty.ratio", "1e-1"),
    ("min.insync.replicas", "+2"), ("compression.type", "zstd"), ("compression.type", "producer"),
    ("compression.gzip.level", "-1"), ("compression.gzip.level", "9"),
    ("compression.zstd.level", "-131072"), ("local.retention.bytes", "-2"),
    ("message.format.version", "3.0-IV1"), ("message.format.version", "0.10.2"),
    ("leader.replication.throttled.replicas", "*"),
    ("follower.replication.throttled.replicas", "0:1, 1:2"),
    ("follower.replication.throttled.replicas", ""), ("remote.storage.enable", "false"),
    ("message.timestamp.before.max.ms", "0"), ("delete.retention.ms", "0"),
    ("flush.messages", "1"), ("segment.index.bytes", "4"), ("segment.jitter.ms", "0"),
])
def test_valid_values(name: str, value: str) -> None:
    assert invalid_value(name, value) is None


@pytest.mark.parametrize(("name", "value", "why"), [
    ("retention.ms", "-2", "retention.ms must be in [-1,"),
    ("retention.ms", "1h", "retention.ms must be a 64-bit integer"),
    ("retention.ms", "1_000", "retention.ms must be a 64-bit integer"),
    ("retention.ms", str(2**63), "retention.ms must be a 64-bit integer"),
    ("segment.bytes", "13", "segment.bytes must be in [14,"),
    ("segment.bytes", str(2**31), "segment.bytes must be a 32-bit integer"),
    ("segment.ms", "0", "segment.ms must be in [1,"),
    ("max.message.bytes", "-1", "max.message.bytes must be in [0,"),
    ("cleanup.policy", "", "cleanup.policy needs at least one"),
    ("cleanup.policy", "delete,delete", "more than once"),
    ("cleanup.policy", "delete,shred", "got ['shred']"),
    ("message.timestamp.type", "createtime", "must be one of"),
    ("unclean.leader.election.enabled", "true", "unknown topic config"),
    ("unclean.leader.election.enable", "yes", "must be true or false"),
    ("min.cleanable.dirty.ratio", "1.5", "must be in [0, 1], got 1.5"),
    ("min.cleanable.dirty.ratio", "half", "must be a number"),
    ("min.insync.replicas", "0", "min.insync.replicas must be in [1,"),
    ("compression.type", "brotli", "must be one of"),
    ("compression.gzip.level", "0", "must be in [1, 9] or -1"),
    ("compression.zstd.level", "23", "must be in [-131072, 22]"),
    ("local.retention.ms", "-3", "must be in [-2,"),
    ("message.format.version", "banana", "Kafka version"),
    ("leader.replication.throttled.replicas", "0:1,x", "partition:broker"),
    ("remote.storage.enable", "true", "tiered storage"),
])
def test_invalid_values_say_why(name: str, value: str, why: str) -> None:
    said = invalid_value(name, value)
    assert said is not None and why in said


def test_defaults_cover_every_config_and_are_valid() -> None:
    for name, (default, _kind) in DEFAULTS.items():
        assert invalid_value(name, default) is None, name
        assert effective({}, name) == default
    assert effective({"retention.ms": "5"}, "retention.ms") == "5"


def test_kafka_3_9_topic_configs_are_all_known() -> None:
    """The names of Kafka 3.9's LogConfig (TopicConfig plus the replication throttles)."""
    kafka = {
        "cleanup.policy", "compression.type", "compression.gzip.level", "compression.lz4.level",
        "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages",
        "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
        "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
        "max.compaction.lag.ms", "max.message.bytes", "message.downconversion.enable",
        "message.format.version", "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms", "message.timestamp.difference.max.ms",
        "message.timestamp.type", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
        "min.insync.replicas", "preallocate", "remote.log.copy.disable",
        "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes",
        "retention.ms", "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
        "unclean.leader.election.enable"}
    assert set(DEFAULTS) == kafka


def test_compaction_lags_conflict_across_the_set() -> None:
    change = ConfigChange("t", ((SET, "min.compaction.lag.ms", "10"),
                                (SET, "max.compaction.lag.ms", "5")), replace=False)
    refused = apply_change((), change)
    assert isinstance(refused, ConfigRefused) and refused.error_code == ErrorCode.INVALID_CONFIG
    assert "min.compaction.lag.ms (10) > max.compaction.lag.ms (5)" in refused.message


def test_incremental_set_delete_append_subtract() -> None:
    now = (("cleanup.policy", "delete"), ("retention.ms", "1000"))
    change = ConfigChange("t", ((SET, "segment.bytes", "1048576"), (DELETE, "retention.ms", None),
                                (APPEND, "cleanup.policy", "compact")), replace=False)
    assert apply_change(now, change) == (("cleanup.policy", "delete,compact"),
                                         ("segment.bytes", "1048576"))
    # Append to an unset list starts from its default; subtract removes; appending twice is one.
    assert apply_change((), ConfigChange("t", ((APPEND, "cleanup.policy", "compact"),
                                               (APPEND, "cleanup.policy", "compact")), False)
                        ) == (("cleanup.policy", "delete,compact"),)
    assert apply_change((("cleanup.policy", "delete,compact"),), ConfigChange(
        "t", ((SUBTRACT, "cleanup.policy", "delete"),), False)) == (("cleanup.policy", "compact"),)
    # Deleting a config that is not set is a no-op, as in Kafka.
    assert apply_change(now, ConfigChange("t", ((DELETE, "segment.ms", None),), False)) == now


def test_incremental_refusals_change_nothing() -> None:
    now = (("retention.ms", "1000"),)
    cases = [
        ((SET, "retention.ms", "2000"), (SET, "nope", "1"), ErrorCode.INVALID_CONFIG),
        ((SET, "retention.ms", "2000"), (SET, "segment.bytes", "1"), ErrorCode.INVALID_CONFIG),
        ((APPEND, "retention.ms", "5"), None, ErrorCode.INVALID_CONFIG),
        ((SUBTRACT, "cleanup.policy", "delete"), None, ErrorCode.INVALID_CONFIG),  # empty list
        ((SET, "retention.ms", None), None, ErrorCode.INVALID_REQUEST),
    ]
    for first, second, code in cases:
        ops = (first,) if second is None else (first, second)
        out = apply_change(now, ConfigChange("t", ops, False))
        assert isinstance(out, ConfigRefused) and out.error_code == code, ops


def test_replace_drops_what_is_not_given() -> None:
    now = (("retention.ms", "1000"), ("segment.bytes", "1048576"))
    change = ConfigChange("t", ((SET, "max.message.bytes", "5000"),), replace=True)
    assert apply_change(now, change) == (("max.message.bytes", "5000"),)
    assert apply_change(now, ConfigChange("t", (), replace=True)) == ()


def test_decide_unknown_internal_and_ok() -> None:
    info = TopicInfo("t", uuid.uuid4(), (0,), (("retention.ms", "1"),))
    change = ConfigChange("t", ((SET, "retention.bytes", "10"),), False)
    assert decide(change, info, INTERNAL) == (("retention.bytes", "10"), ("retention.ms", "1"))
    missing = decide(change, None, INTERNAL)
    assert isinstance(missing, AlterOutcome)
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    internal = TopicInfo("__consumer_offsets", uuid.uuid4(), (0,))
    refused = decide(ConfigChange("__consumer_offsets", change.ops, False), internal, INTERNAL)
    assert isinstance(refused, AlterOutcome) and refused.error_code == ErrorCode.INVALID_REQUEST


def _iac_resource(rtype: int, name: str, *configs: tuple[str, int, str | None]
                  ) -> iac_wire.AlterConfigsResource:
    return iac_wire.AlterConfigsResource(rtype, name, tuple(
        iac_wire.AlterableConfig(n, op, v) for n, op, v in configs))


def test_incremental_plan_and_build_every_version() -> None:
    req = iac_wire.IncrementalAlterConfigsRequest(resources=(
        _iac_resource(2, "a", ("retention.ms", 0, "5"), ("cleanup.policy", 2, "compact")),
        _iac_resource(2, "dup", ("retention.ms", 0, "5")),
        _iac_resource(2, "dup", ("retention.ms", 1, None)),
        _iac_resource(2, "keys", ("retention.ms", 0, "5"), ("retention.ms", 1, None)),
        _iac_resource(2, "op", ("retention.ms", 9, "5")),
        _iac_resource(4, "0"),
        _iac_resource(4, "0x", ("log.retention.ms", 0, "5")),
        _iac_resource(8, "0", ("kafka", 0, "DEBUG")),
        _iac_resource(2, "b", ("segment.ms", 1, None)),
    ), validate_only=True)
    for v in _versions(ApiKey.INCREMENTAL_ALTER_CONFIGS):
        back = iac_wire.IncrementalAlterConfigsRequest.decode(req.encode(v), v)
        changes, decided = incremental_alter_configs.plan(back, 0)
        assert changes == [
            ConfigChange("a", ((SET, "retention.ms", "5"), (APPEND, "cleanup.policy", "compact")),
                         replace=False),
            ConfigChange("b", ((DELETE, "segment.ms", None),), replace=False),
        ]
        codes = {i: o.error_code for i, o in decided.items()}
        assert codes == {1: ErrorCode.INVALID_REQUEST, 2: ErrorCode.INVALID_REQUEST,
                         3: ErrorCode.INVALID_REQUEST, 4: ErrorCode.INVALID_REQUEST,
                         5: ErrorCode.NONE, 6: ErrorCode.INVALID_REQUEST,
                         7: ErrorCode.INVALID_REQUEST}
        by_topic = {"a": AlterOutcome(ErrorCode.NONE),
                    "b": AlterOutcome(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "no b")}
        resp = iac_wire.IncrementalAlterConfigsResponse.decode(
            incremental_alter_configs.build(back, decided, by_topic).encode(v), v)
        got = [(r.resource_type, r.resource_name, r.error_code) for r in resp.responses]
        assert got == [(2, "a", 0), (2, "dup", 42), (2, "dup", 42), (2, "keys", 42),
                       (2, "op", 42), (4, "0", 0), (4, "0x", 42), (8, "0", 42), (2, "b", 3)]
        assert resp.responses[0].error_message is None
        assert resp.responses[-1].error_message == "no b"


def test_legacy_alter_plan_drops_null_values_and_builds_every_version() -> None:
    req = ac_wire.AlterConfigsRequest(resources=(
        ac_wire.AlterConfigsResource(2, "t", (ac_wire.AlterableConfig("retention.ms", "7"),
                                              ac_wire.AlterableConfig("segment.ms", None))),
        ac_wire.AlterConfigsResource(4, "0", (ac_wire.AlterableConfig("x", "1"),)),
    ))
    for v in _versions(ApiKey.ALTER_CONFIGS):
        back = ac_wire.AlterConfigsRequest.decode(req.encode(v), v)
        changes, decided = alter_configs.plan(back, 0)
        assert changes == [ConfigChange("t", ((SET, "retention.ms", "7"),), replace=True)]
        assert {i: o.error_code for i, o in decided.items()} == {1: ErrorCode.INVALID_REQUEST}
        assert decided[1].error_message == "Cannot update these configs dynamically: ['x']"
        resp = ac_wire.AlterConfigsResponse.decode(alter_configs.build(
            back, decided, {"t": AlterOutcome(ErrorCode.NONE)}).encode(v), v)
        assert [(r.resource_name, r.error_code) for r in resp.responses] == [("t", 0), ("0", 42)]


def test_broker_alters_name_what_kafka_changes_dynamically() -> None:
    req = ac_wire.AlterConfigsRequest(resources=(
        ac_wire.AlterConfigsResource(4, "", (ac_wire.AlterableConfig("log.retention.ms", "1"),
                                             ac_wire.AlterableConfig("num.partitions", "3"))),
        ac_wire.AlterConfigsResource(4, "7", (ac_wire.AlterableConfig("num.partitions", "3"),)),
    ))
    _changes, decided = alter_configs.plan(req, 0)
    assert decided[0].error_code == ErrorCode.INVALID_REQUEST
    assert decided[0].error_message == (
        "Cannot update these configs dynamically: ['num.partitions']; ['log.retention.ms'] are "
        "fixed when this broker starts; set the topic config instead (AlterConfigs on the topic)")
    assert decided[1].error_code == ErrorCode.INVALID_REQUEST
    assert "Unexpected broker id, expected 0" in (decided[1].error_message or "")


def test_create_topics_checks_values_and_repeats() -> None:
    def topic(name: str, *configs: tuple[str, str]) -> ct_wire.CreatableTopic:
        return ct_wire.CreatableTopic(name=name, num_partitions=1, replication_factor=1,
                                      configs=tuple(ct_wire.CreatableTopicConfig(n, v)
                                                    for n, v in configs))

    req = ct_wire.CreateTopicsRequest(topics=(
        topic("ok", ("retention.ms", "1000"), ("message.timestamp.type", "LogAppendTime")),
        topic("neg", ("segment.bytes", "-5")),
        topic("twice", ("retention.ms", "1"), ("retention.ms", "2")),
        topic("policy", ("cleanup.policy", "forever")),
    ))
    specs, errors = create_topics.plan(req, 1)
    assert [s.name for s in specs] == ["ok"]
    assert {n: code for n, (code, _msg) in errors.items()} == {
        "neg": ErrorCode.INVALID_CONFIG, "twice": ErrorCode.INVALID_CONFIG,
        "policy": ErrorCode.INVALID_CONFIG}
