"""The transaction APIs' handlers (cluster/kafka/handlers): wire <-> the coordinator's types, for
every advertised version, with each version's error codes as Kafka 3.9 answers them."""

from __future__ import annotations

import uuid

from redshank.cluster.group import partition_for
from redshank.cluster.kafka import TopicPartition
from redshank.cluster.kafka.handlers import (
    add_offsets_to_txn,
    add_partitions_to_txn,
    describe_transactions,
    end_txn,
    find_coordinator,
    init_producer_id,
    list_transactions,
    metadata,
)
from redshank.cluster.txn.api import (
    AddOffsetsResult,
    AddPartitionsResult,
    DescribedTransaction,
    EndTxnResult,
    InitProducerIdRequest,
    InitProducerIdResult,
    ListTransactionsResult,
    TransactionListing,
    TxnState,
)
from redshank.protocol.api_versions import ADVERTISED, ApiKey
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import add_offsets_to_txn as ao_wire
from redshank.protocol.messages import add_partitions_to_txn as ap_wire
from redshank.protocol.messages import describe_transactions as dt_wire
from redshank.protocol.messages import end_txn as et_wire
from redshank.protocol.messages import find_coordinator as fc_wire
from redshank.protocol.messages import init_producer_id as ip_wire
from redshank.protocol.messages import list_transactions as lt_wire

_FENCED = ErrorCode.PRODUCER_FENCED
_EPOCH = ErrorCode.INVALID_PRODUCER_EPOCH


def _versions(key: ApiKey) -> range:
    lo, hi = ADVERTISED[key]
    return range(lo, hi + 1)


def test_init_producer_id_goes_to_the_coordinator_and_fenced_is_new_in_v4() -> None:
    for v in _versions(ApiKey.INIT_PRODUCER_ID):
        req = ip_wire.InitProducerIdRequest(transactional_id="t", transaction_timeout_ms=6000,
                                            producer_id=7, producer_epoch=2)
        assert not init_producer_id.wants_id(req)
        # v3+ carry the id and epoch a producer re-initialising had (KIP-360).
        assert init_producer_id.to_api(req, v) == InitProducerIdRequest(
            "t", 6000, *((7, 2) if v >= 3 else (-1, -1)))
        resp = init_producer_id.build_txn(InitProducerIdResult(_FENCED), v)
        resp.encode(v)
        assert (resp.error_code, resp.producer_id) == (_FENCED if v >= 4 else _EPOCH, -1)
        ok = init_producer_id.build_txn(InitProducerIdResult(ErrorCode.NONE, 9, 3), v)
        assert (ok.error_code, ok.producer_id, ok.producer_epoch) == (0, 9, 3)
    half = ip_wire.InitProducerIdRequest(transactional_id="t", producer_id=7, producer_epoch=-1)
    assert init_producer_id.to_api(half, 4) == InitProducerIdResult(ErrorCode.INVALID_REQUEST)
    assert init_producer_id.wants_id(ip_wire.InitProducerIdRequest(transactional_id=None))


def test_add_partitions_single_and_batched_shapes() -> None:
    topics = (ap_wire.AddPartitionsToTxnTopic("a", (0, 1)),
              ap_wire.AddPartitionsToTxnTopic("b", (0,)))
    for v in _versions(ApiKey.ADD_PARTITIONS_TO_TXN):
        if v < 4:
            req = ap_wire.AddPartitionsToTxnRequest(
                v3_and_below_transactional_id="t", v3_and_below_producer_id=5,
                v3_and_below_producer_epoch=1, v3_and_below_topics=topics)
        else:
            req = ap_wire.AddPartitionsToTxnRequest(transactions=(
                ap_wire.AddPartitionsToTxnTransaction("t", 5, 1, False, topics),
                ap_wire.AddPartitionsToTxnTransaction("u", 6, 0, True, topics[:1])))
        asked = add_partitions_to_txn.to_api(req, v)
        assert asked[0].partitions == (TopicPartition("a", 0), TopicPartition("a", 1),
                                       TopicPartition("b", 0))
        assert (asked[0].transactional_id, asked[0].producer_id, asked[0].producer_epoch) == (
            "t", 5, 1)
        results = [AddPartitionsResult(tuple((tp, _FENCED) for tp in r.partitions))
                   for r in asked]
        resp = add_partitions_to_txn.build(asked, results, v)
        resp.encode(v)
        want = _FENCED if v >= 2 else _EPOCH
        if v < 4:
            assert len(asked) == 1
            assert [(t.name, [(p.partition_index, p.partition_error_code)
                              for p in t.results_by_partition])
                    for t in resp.results_by_topic_v3_and_below] == [
                ("a", [(0, want), (1, want)]), ("b", [(0, want)])]
        else:
            assert [r.verify_only for r in asked] == [False, True]
            assert [r.transactional_id for r in resp.results_by_transaction] == ["t", "u"]
            assert resp.error_code == 0


def test_add_partitions_naming_a_missing_partition_adds_none() -> None:
    req = add_partitions_to_txn.to_api(ap_wire.AddPartitionsToTxnRequest(
        v3_and_below_transactional_id="t", v3_and_below_topics=(
            ap_wire.AddPartitionsToTxnTopic("a", (0, 3)),
            ap_wire.AddPartitionsToTxnTopic("gone", (0,)))), 0)[0]
    assert add_partitions_to_txn.topics((req,)) == ["a", "gone"]
    refused = add_partitions_to_txn.refuse_unknown(req, {"a": 2, "gone": 0})
    assert refused is not None and refused.errors == (
        (TopicPartition("a", 0), ErrorCode.OPERATION_NOT_ATTEMPTED),
        (TopicPartition("a", 3), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        (TopicPartition("gone", 0), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
    # Not known now (the controller cannot say): the coordinator adds it.
    assert add_partitions_to_txn.refuse_unknown(req, {"a": 4, "gone": None}) is None


def test_add_offsets_names_the_groups_partition_and_end_txn_maps_fenced() -> None:
    for v in _versions(ApiKey.ADD_OFFSETS_TO_TXN):
        api = add_offsets_to_txn.to_api(ao_wire.AddOffsetsToTxnRequest("t", 5, 1, "grp"), v,
                                        "__consumer_offsets", 8)
        assert api.offsets_partition == TopicPartition("__consumer_offsets",
                                                       partition_for("grp", 8))
        resp = add_offsets_to_txn.build(AddOffsetsResult(_FENCED), v)
        resp.encode(v)
        assert resp.error_code == (_FENCED if v >= 2 else _EPOCH)
    for v in _versions(ApiKey.END_TXN):
        api = end_txn.to_api(et_wire.EndTxnRequest("t", 5, 1, True), v)
        assert (api.transactional_id, api.producer_id, api.producer_epoch, api.committed) == (
            "t", 5, 1, True)
        resp = end_txn.build(EndTxnResult(_FENCED), v)
        resp.encode(v)
        assert resp.error_code == (_FENCED if v >= 2 else _EPOCH)
        assert end_txn.build(EndTxnResult(ErrorCode.CONCURRENT_TRANSACTIONS), v).error_code == 51


def test_list_transactions_merges_coordinators_and_describe_keeps_request_order() -> None:
    req = list_transactions.to_api(lt_wire.ListTransactionsRequest(
        state_filters=("Ongoing", "Bogus"), duration_filter=5000), 1)
    assert req.duration_filter_ms == 5000
    assert list_transactions.to_api(lt_wire.ListTransactionsRequest(duration_filter=5), 0
                                    ).duration_filter_ms == -1
    listed = list_transactions.build(req, [
        ListTransactionsResult(ErrorCode.NONE, (TransactionListing("t", 5, TxnState.ONGOING),)),
        ListTransactionsResult(ErrorCode.NOT_COORDINATOR),
        ListTransactionsResult(ErrorCode.NONE, (TransactionListing("u", 6, TxnState.ONGOING),))])
    listed.encode(1)
    assert listed.error_code == 0 and listed.unknown_state_filters == ("Bogus",)
    assert [(t.transactional_id, t.transaction_state) for t in listed.transaction_states] == [
        ("t", "Ongoing"), ("u", "Ongoing")]
    loading = list_transactions.build(req, [
        ListTransactionsResult(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)])
    assert loading.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS

    asked = describe_transactions.to_api(dt_wire.DescribeTransactionsRequest(("t", "x")), 0)
    assert [a.transactional_ids for a in asked] == [("t",), ("x",)]
    resp = describe_transactions.build([
        DescribedTransaction("t", ErrorCode.NONE, TxnState.ONGOING, 5, 1, 60000, 1234,
                             (TopicPartition("a", 0), TopicPartition("a", 1))),
        describe_transactions.not_coordinator("x")], 0)
    resp.encode(0)
    ours, other = resp.transaction_states
    assert (ours.transaction_state, ours.producer_id, ours.transaction_start_time_ms) == (
        "Ongoing", 5, 1234)
    assert [(t.topic, t.partitions) for t in ours.topics] == [("a", (0, 1))]
    assert (other.transactional_id, other.error_code) == ("x", ErrorCode.NOT_COORDINATOR)


def test_find_coordinator_of_a_transactional_id_is_its_partitions_leader() -> None:
    broker = metadata.BrokerAddress(0, "localhost", 9092)
    brokers = (metadata.BrokerAddress(1, "a", 1), metadata.BrokerAddress(2, "b", 2))
    parts = (metadata.ReplicatedPartition((1, 2), 2, 5),
             metadata.ReplicatedPartition((2, 1), -1, -1))
    view = metadata.ClusterView(brokers, 1, {
        "__transaction_state": metadata.ReplicatedTopic(uuid.UUID(int=1), parts)})
    keys = {p: next(f"t{i}" for i in range(100) if partition_for(f"t{i}", 2) == p)
            for p in range(2)}
    req = fc_wire.FindCoordinatorRequest(key_type=1, coordinator_keys=(keys[0], keys[1], ""))
    assert find_coordinator.txn_keys(req, 4) == (keys[0], keys[1])
    assert find_coordinator.group_keys(req, 4) == ()
    resp = find_coordinator.handle(req, 4, broker,
                                   find_coordinator.locate_in(view, "__transaction_state"))
    assert [(c.node_id, c.error_code) for c in resp.coordinators] == [
        (2, 0), (-1, ErrorCode.COORDINATOR_NOT_AVAILABLE), (-1, ErrorCode.INVALID_REQUEST)]
    # Single node: this node, for every transactional id.
    single = find_coordinator.handle(fc_wire.FindCoordinatorRequest(key="t", key_type=1), 1,
                                     broker)
    assert (single.error_code, single.node_id, single.port) == (0, 0, 9092)
