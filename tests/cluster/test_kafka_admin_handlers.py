"""The admin API handlers (DescribeGroups, ListGroups, DeleteGroups): wire <-> cluster/group
values for every advertised version, and every response they build encodes at every advertised
version and decodes back to what was built (a field a version lacks stays at its default)."""

from __future__ import annotations

import dataclasses
import uuid

from redshank.cluster.group import (
    DescribedGroup,
    DescribedMember,
    GroupDeletion,
    GroupListing,
    ListGroupsResult,
)
from redshank.cluster.kafka.broker_configs import BrokerSettings
from redshank.cluster.kafka.handlers import (
    create_partitions,
    delete_groups,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_groups,
    list_groups,
    metadata,
    offset_for_leader_epoch,
)
from redshank.cluster.kafka.topic_table import TopicInfo, TopicTable
from redshank.cluster.partition import api as papi
from redshank.protocol.api_versions import ADVERTISED, ApiKey
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import create_partitions as cp_wire
from redshank.protocol.messages import delete_groups as dg_wire
from redshank.protocol.messages import delete_records as dr_wire
from redshank.protocol.messages import delete_topics as dt_wire
from redshank.protocol.messages import describe_cluster as dc_wire
from redshank.protocol.messages import describe_configs as dcf_wire
from redshank.protocol.messages import describe_groups as ds_wire
from redshank.protocol.messages import list_groups as lg_wire
from redshank.protocol.messages import offset_for_leader_epoch as ofe_wire

INT32_MIN = -(2**31)


def _versions(key: ApiKey) -> range:
    lo, hi = ADVERTISED[key]
    return range(lo, hi + 1)


def test_describe_groups_one_request_per_distinct_group() -> None:
    for v in _versions(ApiKey.DESCRIBE_GROUPS):
        req = ds_wire.DescribeGroupsRequest(groups=("a", "b", "a"),
                                            include_authorized_operations=v >= 3)
        req = ds_wire.DescribeGroupsRequest.decode(req.encode(v), v)
        assert [r.group_ids for r in describe_groups.to_api(req, v)] == [("a",), ("b",)]


def test_describe_groups_encodes_every_version() -> None:
    member = DescribedMember("m-1", "static-1", "client", "/127.0.0.1", b"meta", b"assign")
    groups = [
        DescribedGroup("a", ErrorCode.NONE, "Stable", "consumer", "range", (member,)),
        DescribedGroup("b", ErrorCode.NOT_COORDINATOR),
    ]
    for v in _versions(ApiKey.DESCRIBE_GROUPS):
        resp = describe_groups.build(groups, v)
        back = ds_wire.DescribeGroupsResponse.decode(resp.encode(v), v)
        a, b = back.groups
        assert (a.group_id, a.group_state, a.protocol_type, a.protocol_data) == (
            "a", "Stable", "consumer", "range")
        assert a.authorized_operations == INT32_MIN  # notes G14
        (m,) = a.members
        assert (m.member_id, m.client_id, m.client_host) == ("m-1", "client", "/127.0.0.1")
        assert (m.member_metadata, m.member_assignment) == (b"meta", b"assign")
        assert m.group_instance_id == ("static-1" if v >= 4 else None)
        assert (b.group_id, b.error_code, b.members) == ("b", ErrorCode.NOT_COORDINATOR, ())


def test_list_groups_filters_by_version() -> None:
    for v in _versions(ApiKey.LIST_GROUPS):
        req = lg_wire.ListGroupsRequest(states_filter=("Stable",) if v >= 4 else (),
                                        types_filter=("classic",) if v >= 5 else ())
        api = list_groups.to_api(lg_wire.ListGroupsRequest.decode(req.encode(v), v), v)
        assert api.states_filter == (("Stable",) if v >= 4 else ())
        assert api.types_filter == (("classic",) if v >= 5 else ())


def test_list_groups_merges_coordinators_every_version() -> None:
    results = [
        ListGroupsResult(ErrorCode.NONE, (GroupListing("a", "consumer", "Stable"),)),
        ListGroupsResult(ErrorCode.NONE, (GroupListing("b", "", "Empty"),)),
    ]
    for v in _versions(ApiKey.LIST_GROUPS):
        back = lg_wire.ListGroupsResponse.decode(list_groups.build(results, v).encode(v), v)
        assert back.error_code == ErrorCode.NONE
        assert [(g.group_id, g.protocol_type) for g in back.groups] == [
            ("a", "consumer"), ("b", "")]
        assert [g.group_state for g in back.groups] == (
            ["Stable", "Empty"] if v >= 4 else ["", ""])
        assert [g.group_type for g in back.groups] == (
            ["classic", "classic"] if v >= 5 else ["", ""])
    failed = [*results, ListGroupsResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)]
    assert list_groups.build(failed, 0).error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE


def test_delete_groups_every_version() -> None:
    for v in _versions(ApiKey.DELETE_GROUPS):
        req = dg_wire.DeleteGroupsRequest(groups_names=("a", "b", "b"))
        api = delete_groups.to_api(dg_wire.DeleteGroupsRequest.decode(req.encode(v), v), v)
        assert [r.group_ids for r in api] == [("a",), ("b",)]
        built = delete_groups.build([GroupDeletion("a", ErrorCode.NONE),
                                     GroupDeletion("b", ErrorCode.NON_EMPTY_GROUP)], v)
        back = dg_wire.DeleteGroupsResponse.decode(built.encode(v), v)
        assert [(r.group_id, r.error_code) for r in back.results] == [
            ("a", ErrorCode.NONE), ("b", ErrorCode.NON_EMPTY_GROUP)]


def test_describe_cluster_every_version() -> None:
    broker = metadata.BrokerAddress(3, "broker.example", 9093)
    for v in _versions(ApiKey.DESCRIBE_CLUSTER):
        req = dc_wire.DescribeClusterRequest.decode(
            dc_wire.DescribeClusterRequest(include_cluster_authorized_operations=True).encode(v), v)
        resp = describe_cluster.handle(req, v, broker, "cluster-x")
        back = dc_wire.DescribeClusterResponse.decode(resp.encode(v), v)
        assert (back.error_code, back.cluster_id, back.controller_id) == (0, "cluster-x", 3)
        assert [(b.broker_id, b.host, b.port, b.rack) for b in back.brokers] == [
            (3, "broker.example", 9093, None)]
        assert back.cluster_authorized_operations == INT32_MIN  # notes G14


def test_describe_cluster_refuses_controller_endpoints() -> None:
    broker = metadata.BrokerAddress(0, "h", 1)
    resp = describe_cluster.handle(dc_wire.DescribeClusterRequest(endpoint_type=2), 1, broker, "c")
    back = dc_wire.DescribeClusterResponse.decode(resp.encode(1), 1)
    assert back.error_code == describe_cluster.UNSUPPORTED_ENDPOINT_TYPE
    assert back.error_message is not None and "endpoint type 2" in back.error_message
    assert back.brokers == ()


def test_delete_topics_plan_by_name_and_id() -> None:
    tid = uuid.uuid4()
    for v in _versions(ApiKey.DELETE_TOPICS):
        if v < 6:
            req = dt_wire.DeleteTopicsRequest(topic_names=("a", "b", "a"), timeout_ms=1000)
            want = [delete_topics.DeleteTarget("a"), delete_topics.DeleteTarget("b")]
        else:
            req = dt_wire.DeleteTopicsRequest(topics=(
                dt_wire.DeleteTopicState("a"), dt_wire.DeleteTopicState(None, tid)),
                timeout_ms=1000)
            want = [delete_topics.DeleteTarget("a"), delete_topics.DeleteTarget(None, tid)]
        back = dt_wire.DeleteTopicsRequest.decode(req.encode(v), v)
        assert delete_topics.plan(back, v) == want


def test_delete_topics_decide() -> None:
    a = TopicInfo("a", uuid.uuid4(), (0, 1))
    groups = TopicInfo("__consumer_offsets", uuid.uuid4(), (0,))
    table = TopicTable([a, groups])
    internal = frozenset({"__consumer_offsets"})
    assert delete_topics.decide(delete_topics.DeleteTarget("a"), table, internal) is a
    assert delete_topics.decide(delete_topics.DeleteTarget(None, a.topic_id), table, internal) is a
    missing = delete_topics.decide(delete_topics.DeleteTarget("nope"), table, internal)
    assert isinstance(missing, delete_topics.DeleteOutcome)
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    wrong_id = delete_topics.decide(delete_topics.DeleteTarget("a", uuid.uuid4()), table, internal)
    assert isinstance(wrong_id, delete_topics.DeleteOutcome)
    assert wrong_id.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    no_id = delete_topics.decide(delete_topics.DeleteTarget(None, uuid.uuid4()), table, internal)
    assert isinstance(no_id, delete_topics.DeleteOutcome)
    assert no_id.error_code == ErrorCode.UNKNOWN_TOPIC_ID
    refused = delete_topics.decide(delete_topics.DeleteTarget("__consumer_offsets"), table,
                                   internal)
    assert isinstance(refused, delete_topics.DeleteOutcome)
    assert refused.error_code == ErrorCode.INVALID_REQUEST
    assert table.remove("a") is a and table.get("a") is None and table.by_id(a.topic_id) is None


def test_delete_topics_build_every_version() -> None:
    tid = uuid.uuid4()
    outcomes = [delete_topics.DeleteOutcome("a", tid, ErrorCode.NONE),
                delete_topics.DeleteOutcome("b", uuid.UUID(int=0),
                                            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "no b")]
    for v in _versions(ApiKey.DELETE_TOPICS):
        back = dt_wire.DeleteTopicsResponse.decode(
            delete_topics.build(outcomes, v).encode(v), v)
        assert [(r.name, r.error_code) for r in back.responses] == [
            ("a", 0), ("b", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
        assert back.responses[0].topic_id == (tid if v >= 6 else uuid.UUID(int=0))
        assert back.responses[1].error_message == ("no b" if v >= 5 else None)


BROKER = BrokerSettings(
    node_id=0, listener="127.0.0.1:9092", advertised="127.0.0.1:9092", data_dir="/d",
    default_partitions=4, default_replication_factor=1, auto_create_topics=True,
    connections_max_idle_ms=600000, queued_max_request_bytes=1 << 26, retention_check_ms=1000,
    initial_rebalance_delay_ms=500, fetch_session_slots=1000,
    explicit=frozenset({"num.partitions"}))


def test_describe_configs_topics_brokers_every_version() -> None:
    info = TopicInfo("t", uuid.uuid4(), (0,), (("retention.ms", "1000"),))
    req = dcf_wire.DescribeConfigsRequest(resources=(
        dcf_wire.DescribeConfigsResource(2, "t", None),
        dcf_wire.DescribeConfigsResource(2, "t", ("segment.bytes", "no.such.key")),
        dcf_wire.DescribeConfigsResource(2, "missing", None),
        dcf_wire.DescribeConfigsResource(4, "0", None),
        dcf_wire.DescribeConfigsResource(8, "0", None),
    ))
    for v in _versions(ApiKey.DESCRIBE_CONFIGS):
        back_req = dcf_wire.DescribeConfigsRequest.decode(req.encode(v), v)
        assert describe_configs.topic_names(back_req) == ("t", "missing")
        resp = describe_configs.build(back_req, v, {"t": info, "missing": None}, BROKER)
        full, one, missing, broker, logger = dcf_wire.DescribeConfigsResponse.decode(
            resp.encode(v), v).results
        values = {c.name: (c.value, c.config_source) for c in full.configs}
        assert set(values) == set(describe_configs.DEFAULTS)
        source = describe_configs.ConfigSource
        assert values["retention.ms"] == ("1000", source.DYNAMIC_TOPIC_CONFIG)
        assert values["cleanup.policy"] == ("delete", source.DEFAULT_CONFIG)
        assert values["max.message.bytes"][0] == "1048588"
        # Kafka 3.9's whole set, ours where the broker applies its own default.
        assert values["compression.type"] == ("producer", source.DEFAULT_CONFIG)
        assert values["segment.ms"] == (str(2**63 - 1), source.STATIC_BROKER_CONFIG)
        assert all(not c.read_only and not c.synonyms for c in full.configs)
        types = {c.name: c.config_type for c in full.configs}
        assert types["retention.ms"] == (describe_configs.ConfigType.LONG if v >= 3 else 0)
        assert [c.name for c in one.configs] == ["segment.bytes"]
        assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and not missing.configs
        listed = {c.name: (c.value, c.config_source, c.read_only) for c in broker.configs}
        assert listed["num.partitions"] == ("4", source.STATIC_BROKER_CONFIG, True)
        assert listed["default.replication.factor"] == ("1", source.DEFAULT_CONFIG, True)
        assert listed["log.retention.ms"] == ("-1", source.STATIC_BROKER_CONFIG, True)
        assert listed["message.max.bytes"] == ("1048588", source.DEFAULT_CONFIG, True)
        assert logger.error_code == ErrorCode.INVALID_REQUEST


def test_describe_configs_synonyms_documentation_and_other_brokers() -> None:
    info = TopicInfo("t", uuid.uuid4(), (0,), (("retention.ms", "1000"),))
    req = dcf_wire.DescribeConfigsRequest(resources=(
        dcf_wire.DescribeConfigsResource(2, "t", ("retention.ms", "cleanup.policy")),
        dcf_wire.DescribeConfigsResource(4, "9", None),
        dcf_wire.DescribeConfigsResource(4, "", None),
    ))
    source = describe_configs.ConfigSource
    for v in _versions(ApiKey.DESCRIBE_CONFIGS):
        asked = dataclasses.replace(req, include_synonyms=v >= 1, include_documentation=v >= 3)
        back_req = dcf_wire.DescribeConfigsRequest.decode(asked.encode(v), v)
        resp = describe_configs.build(back_req, v, {"t": info}, BROKER)
        topic, other, default = dcf_wire.DescribeConfigsResponse.decode(resp.encode(v), v).results
        retention, policy = topic.configs
        if v >= 1:
            assert [(s.name, s.value, s.source) for s in retention.synonyms] == [
                ("retention.ms", "1000", source.DYNAMIC_TOPIC_CONFIG),
                ("log.retention.ms", "-1", source.STATIC_BROKER_CONFIG),
                ("log.retention.ms", "604800000", source.DEFAULT_CONFIG)]
            assert [(s.name, s.value, s.source) for s in policy.synonyms] == [
                ("log.cleanup.policy", "delete", source.DEFAULT_CONFIG)]
        assert (policy.documentation or "").startswith("delete:") == (v >= 3)
        assert policy.is_default == (v == 0)
        assert other.error_code == ErrorCode.INVALID_REQUEST
        assert (default.error_code, default.configs) == (0, ())


def test_create_partitions_plan_decide_grow() -> None:
    info = TopicInfo("t", uuid.uuid4(), (1, 0))
    internal = frozenset({"__consumer_offsets"})
    Grow = create_partitions.Grow

    def code(grow: create_partitions.Grow, of: TopicInfo | None = info) -> int:
        out = create_partitions.decide(grow, of, 0, internal)
        return 0 if out is None else out.error_code

    assert code(Grow("t", 4)) == 0
    assert code(Grow("t", 4, ((0,), (0,)))) == 0
    assert code(Grow("t", 2)) == ErrorCode.INVALID_PARTITIONS
    assert code(Grow("t", 1)) == ErrorCode.INVALID_PARTITIONS
    assert code(Grow("t", 4, ((0,),))) == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert code(Grow("t", 3, ((1,),))) == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert code(Grow("t", 3), None) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    groups = TopicInfo("__consumer_offsets", uuid.uuid4(), (0,))
    assert code(Grow("__consumer_offsets", 3), groups) == ErrorCode.INVALID_REQUEST
    bigger = create_partitions.grown(info, 5, 2)
    assert bigger.cores[:2] == info.cores and bigger.partitions == 5
    assert bigger.topic_id == info.topic_id
    assert set(bigger.cores) == {0, 1}


def test_create_partitions_every_version() -> None:
    req = cp_wire.CreatePartitionsRequest(topics=(
        cp_wire.CreatePartitionsTopic("a", 3, None),
        cp_wire.CreatePartitionsTopic("b", 2, (cp_wire.CreatePartitionsAssignment((0,)),)),
        cp_wire.CreatePartitionsTopic("d", 2, None),
        cp_wire.CreatePartitionsTopic("d", 3, None),
    ), timeout_ms=1000, validate_only=False)
    for v in _versions(ApiKey.CREATE_PARTITIONS):
        grows, refused = create_partitions.plan(cp_wire.CreatePartitionsRequest.decode(
            req.encode(v), v))
        assert grows == [create_partitions.Grow("a", 3), create_partitions.Grow("b", 2, ((0,),))]
        assert [(r.name, r.error_code) for r in refused] == [("d", ErrorCode.INVALID_REQUEST)]
        outcomes = [*refused, create_partitions.GrowOutcome("a", 0),
                    create_partitions.GrowOutcome("b", ErrorCode.INVALID_PARTITIONS, "why")]
        back = cp_wire.CreatePartitionsResponse.decode(
            create_partitions.build(outcomes, v).encode(v), v)
        assert [(r.name, r.error_code, r.error_message) for r in back.results] == [
            ("d", ErrorCode.INVALID_REQUEST, "topic named more than once"), ("a", 0, None),
            ("b", ErrorCode.INVALID_PARTITIONS, "why")]


def test_delete_records_plan_and_build_every_version() -> None:
    info = TopicInfo("t", uuid.uuid4(), (1, 0, 1))
    req = dr_wire.DeleteRecordsRequest(topics=(
        dr_wire.DeleteRecordsTopic("t", (dr_wire.DeleteRecordsPartition(0, 5),
                                         dr_wire.DeleteRecordsPartition(1, -1),
                                         dr_wire.DeleteRecordsPartition(2, -7),
                                         dr_wire.DeleteRecordsPartition(5, 5))),
        dr_wire.DeleteRecordsTopic("nope", (dr_wire.DeleteRecordsPartition(0, 1),)),
    ), timeout_ms=1000)
    for v in _versions(ApiKey.DELETE_RECORDS):
        back_req = dr_wire.DeleteRecordsRequest.decode(req.encode(v), v)
        trims, done = delete_records.plan(back_req, {"t": info, "nope": None})
        assert trims == [delete_records.Trim("t", 0, 1, 5), delete_records.Trim("t", 1, 0, -1)]
        assert done[("t", 2)].error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        assert done[("t", 5)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert done[("nope", 0)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        results = {**done, ("t", 0): papi.TrimResult(0, 5),
                   ("t", 1): papi.TrimResult(0, 9)}
        resp = dr_wire.DeleteRecordsResponse.decode(
            delete_records.build(back_req, results).encode(v), v)
        t, nope = resp.topics
        assert [(p.partition_index, p.low_watermark, p.error_code) for p in t.partitions] == [
            (0, 5, 0), (1, 9, 0), (2, -1, ErrorCode.OFFSET_OUT_OF_RANGE),
            (5, -1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
        assert nope.partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_offset_for_leader_epoch_every_version() -> None:
    info = TopicInfo("t", uuid.uuid4(), (1, 0, 1, 0))
    P = ofe_wire.OffsetForLeaderPartition
    req = ofe_wire.OffsetForLeaderEpochRequest(replica_id=-1, topics=(
        ofe_wire.OffsetForLeaderTopic("t", (P(0, 0, 0), P(1, -1, 5), P(5, -1, 0), P(2, 3, 0),
                                            P(3, -1, -1))),
        ofe_wire.OffsetForLeaderTopic("nope", (P(0, -1, 0),)),
    ))
    for v in _versions(ApiKey.OFFSET_FOR_LEADER_EPOCH):
        back_req = ofe_wire.OffsetForLeaderEpochRequest.decode(
            dataclasses.replace(req, replica_id=-1 if v >= 3 else -2).encode(v), v)
        queries, done = offset_for_leader_epoch.plan(back_req, {"t": info, "nope": None})
        # current_leader_epoch exists from v2 (before: -1, not checked); the leader checks it.
        cur = (lambda e: e) if v >= 2 else (lambda e: -1)
        assert queries == [offset_for_leader_epoch.EndQuery("t", 0, 1, 0, cur(0)),
                           offset_for_leader_epoch.EndQuery("t", 1, 0, 5, -1),
                           offset_for_leader_epoch.EndQuery("t", 2, 1, 0, cur(3))]
        assert done[("t", 5)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert (done[("t", 3)].error_code, done[("t", 3)].leader_epoch,
                done[("t", 3)].end_offset) == (0, -1, -1)
        assert done[("nope", 0)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        results = {**done,
                   ("t", 0): offset_for_leader_epoch.answer(0, papi.OffsetAnswer(0, 42, -1, 0)),
                   ("t", 1): offset_for_leader_epoch.answer(1, papi.OffsetAnswer(0, 7, -1, 4)),
                   ("t", 2): offset_for_leader_epoch.answer(
                       2, papi.OffsetAnswer(ErrorCode.UNKNOWN_LEADER_EPOCH))}
        resp = ofe_wire.OffsetForLeaderEpochResponse.decode(
            offset_for_leader_epoch.build(back_req, results).encode(v), v)
        t, nope = resp.topics
        # The leader epoch in the answer exists from v1.
        e = (lambda x: x) if v >= 1 else (lambda x: -1)
        assert [(p.partition, p.error_code, p.leader_epoch, p.end_offset)
                for p in t.partitions] == [
            (0, 0, e(0), 42), (1, 0, e(4), 7), (5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
            (2, ErrorCode.UNKNOWN_LEADER_EPOCH, -1, -1), (3, 0, -1, -1)]
        assert nope.partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    failed = offset_for_leader_epoch.answer(3, papi.OffsetAnswer(ErrorCode.NOT_LEADER_OR_FOLLOWER))
    assert (failed.error_code, failed.end_offset) == (ErrorCode.NOT_LEADER_OR_FOLLOWER, -1)
