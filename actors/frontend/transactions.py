"""The transaction APIs (KIP-98): each a call to a transactional id's coordinator, and the
core's `TxnIO`, what the transaction hosts of this core ask of the request paths.

Concern: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, ListTransactions and
DescribeTransactions between their handlers' `to_api` and `build` (InitProducerId lives with
the producer-id path in `topics`, FindCoordinator with the groups'); and `CoreTxnIO`: writing a
transaction's COMMIT/ABORT markers to its partitions (those this node leads through
`txn_markers.write_txn_markers` in-process, the others over Kafka's wire to their leader, as
Kafka's coordinator sends WriteTxnMarkers) and producer ids from the controller. Must not
know: the transaction protocol (`cluster/txn`), the wire shapes (`cluster/kafka/handlers`).

    client --EndTxn--> coordinator's node --TxnCall--> TxnHost --WriteMarkers-->
        CoreTxnIO.write_markers --(led here)--> write_txn_markers(core, ...)
                                --(led by broker n)--> WriteTxnMarkers over the wire --> n
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import structlog

from redshank.actors import kafka_client
from redshank.actors._async import resolve
from redshank.actors.controller_service import CONTROLLER_SERVICE, DescribeTopics
from redshank.actors.frontend._registry import serves
from redshank.actors.frontend._txn_coordinators import call, call_all
from redshank.actors.frontend.groups import (
    _groups_topic,
    _groups_view,
    _partition_counts,
)
from redshank.actors.frontend.services import OWNER_GONE, UNREACHABLE, CoreServices
from redshank.actors.frontend.topics import allocate_producer_ids
from redshank.actors.frontend.txn_markers import write_txn_markers
from redshank.actors.group_host import GROUPS_TOPIC
from redshank.actors.txn_host import MARKER_GONE
from redshank.cluster.kafka import TopicPartition
from redshank.cluster.kafka import handlers as h
from redshank.cluster.kafka.handlers.metadata import BrokerAddress
from redshank.cluster.txn.api import (
    AddOffsetsResult,
    AddPartitionsRequest,
    AddPartitionsResult,
    DescribeTransactionsResult,
    EndTxnResult,
    ListTransactionsResult,
    ProducerIdBlock,
    WriteMarkers,
)
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode

__all__ = ["CoreTxnIO"]

_log = structlog.get_logger("redshank.txn")
_NOT_COORDINATOR = ErrorCode.NOT_COORDINATOR
# WriteTxnMarkers v1 (flexible): what Kafka 3.9 brokers send each other.
_MARKERS_VERSION = 1
_NOT_LEADER = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)


@serves(ApiKey.ADD_PARTITIONS_TO_TXN)
async def add_partitions_to_txn(core: CoreServices,
                                request: m.add_partitions_to_txn.AddPartitionsToTxnRequest,
                                version: int
                                ) -> m.add_partitions_to_txn.AddPartitionsToTxnResponse:
    asked = h.add_partitions_to_txn.to_api(request, version)
    counts = await _partition_counts(core, h.add_partitions_to_txn.topics(asked))

    async def one(api: AddPartitionsRequest) -> AddPartitionsResult:
        refused = h.add_partitions_to_txn.refuse_unknown(api, counts)
        if refused is not None:
            return refused
        return await call(core, api.transactional_id, api,
                          h.add_partitions_to_txn.not_coordinator(api))

    results = list(await asyncio.gather(*(one(api) for api in asked)))
    return h.add_partitions_to_txn.build(asked, results, version)


async def _offsets_partitions(core: CoreServices) -> int | None:
    """`__consumer_offsets`' partition count (created on first use, as a group's first
    request would); None while it cannot be known."""
    if core.cluster_mode:
        view = await _groups_view(core)
        topic = None if view is None else view.topics.get(GROUPS_TOPIC)
        return None if topic is None else len(topic.partitions)
    try:
        return (await _groups_topic(core)).partitions
    except OWNER_GONE:
        return None


@serves(ApiKey.ADD_OFFSETS_TO_TXN)
async def add_offsets_to_txn(core: CoreServices,
                             request: m.add_offsets_to_txn.AddOffsetsToTxnRequest, version: int
                             ) -> m.add_offsets_to_txn.AddOffsetsToTxnResponse:
    partitions = await _offsets_partitions(core)
    if partitions is None:  # retriable for clients (librdkafka: refresh and retry)
        return h.add_offsets_to_txn.build(
            AddOffsetsResult(ErrorCode.COORDINATOR_NOT_AVAILABLE), version)
    api = h.add_offsets_to_txn.to_api(request, version, GROUPS_TOPIC, partitions)
    result = await call(core, api.transactional_id, api, AddOffsetsResult(_NOT_COORDINATOR))
    return h.add_offsets_to_txn.build(result, version)


@serves(ApiKey.END_TXN)
async def end_txn(core: CoreServices, request: m.end_txn.EndTxnRequest, version: int
                  ) -> m.end_txn.EndTxnResponse:
    api = h.end_txn.to_api(request, version)
    result = await call(core, api.transactional_id, api, EndTxnResult(_NOT_COORDINATOR))
    return h.end_txn.build(result, version)


@serves(ApiKey.LIST_TRANSACTIONS)
async def list_transactions(core: CoreServices,
                            request: m.list_transactions.ListTransactionsRequest, version: int
                            ) -> m.list_transactions.ListTransactionsResponse:
    """Every coordinator hosted here lists its own transactions (cluster mode: the ones this
    node leads; admin clients ask every broker)."""
    api = h.list_transactions.to_api(request, version)
    results = await call_all(core, api, ListTransactionsResult(_NOT_COORDINATOR))
    return h.list_transactions.build(api, results)


@serves(ApiKey.DESCRIBE_TRANSACTIONS)
async def describe_transactions(
        core: CoreServices, request: m.describe_transactions.DescribeTransactionsRequest,
        version: int) -> m.describe_transactions.DescribeTransactionsResponse:
    asked = h.describe_transactions.to_api(request, version)
    results = await asyncio.gather(*(
        call(core, api.transactional_ids[0], api, DescribeTransactionsResult(
            (h.describe_transactions.not_coordinator(api.transactional_ids[0]),)))
        for api in asked))
    return h.describe_transactions.build([r.transactions[0] for r in results], version)


# ---------------------------------------------------------------------------------------------
# The transaction hosts' I/O.


def _markers_request(markers: WriteMarkers, partitions: tuple[TopicPartition, ...]
                     ) -> m.write_txn_markers.WriteTxnMarkersRequest:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for tp in partitions:
        by_topic[tp.topic].append(tp.partition)
    w = m.write_txn_markers
    return w.WriteTxnMarkersRequest(markers=(w.WritableTxnMarker(
        producer_id=markers.producer_id, producer_epoch=markers.producer_epoch,
        transaction_result=markers.committed,
        topics=tuple(w.WritableTxnMarkerTopic(name, tuple(parts))
                     for name, parts in by_topic.items()),
        coordinator_epoch=markers.coordinator_epoch),))


def _errors(response: m.write_txn_markers.WriteTxnMarkersResponse
            ) -> dict[TopicPartition, int]:
    return {TopicPartition(t.name, p.partition_index): p.error_code
            for marker in response.markers for t in marker.topics for p in t.partitions}


class CoreTxnIO:
    """The `TxnIO` of one core (actors/txn_host.py): attached to its partition manager by
    `setup_core` once the core's request paths exist, used by every transaction host there."""

    def __init__(self, core: CoreServices) -> None:
        self.core = core

    async def producer_ids(self, count: int) -> ProducerIdBlock | None:
        pids = await allocate_producer_ids(self.core, count)
        return None if not pids else ProducerIdBlock(pids.start, len(pids))

    async def write_markers(self, markers: WriteMarkers, partitions: tuple[TopicPartition, ...]
                            ) -> dict[TopicPartition, int]:
        if not self.core.cluster_mode:
            return await self._write_here(markers, partitions)
        return await self._write_in_cluster(markers, partitions)

    async def _write_here(self, markers: WriteMarkers, partitions: tuple[TopicPartition, ...]
                          ) -> dict[TopicPartition, int]:
        """Every partition this node's own (single node: all of them); a topic deleted since
        is gone."""
        infos, unsure = await self.core.topic_infos(sorted({tp.topic for tp in partitions}))
        out: dict[TopicPartition, int] = {}
        asked = []
        for tp in partitions:
            info = infos.get(tp.topic)
            if tp.topic not in unsure and (info is None or tp.partition >= info.partitions):
                out[tp] = MARKER_GONE
            else:
                asked.append(tp)
        if asked:
            out.update(await self._local(markers, tuple(asked)))
        return out

    async def _local(self, markers: WriteMarkers, partitions: tuple[TopicPartition, ...]
                     ) -> dict[TopicPartition, int]:
        response = await write_txn_markers(self.core, _markers_request(markers, partitions),
                                           _MARKERS_VERSION)
        found = _errors(response)
        return {tp: found.get(tp, _NOT_LEADER) for tp in partitions}

    async def _write_in_cluster(self, markers: WriteMarkers,
                                partitions: tuple[TopicPartition, ...]
                                ) -> dict[TopicPartition, int]:
        """Cluster mode: each partition to its leader as the controller knows it (this node:
        in-process; another: over the wire); no leader known yet: NOT_LEADER_OR_FOLLOWER (the
        host asks again). A topic the controller does not hold is the node's own (written
        here) or deleted (gone)."""
        core = self.core
        names = tuple(sorted({tp.topic for tp in partitions}))
        try:
            view = await asyncio.wait_for(resolve(core.router.ref(0, CONTROLLER_SERVICE).ask(
                DescribeTopics(names), block=False)), core.config.controller_timeout_s)
        except UNREACHABLE:
            return dict.fromkeys(partitions, _NOT_LEADER)
        assert isinstance(view, h.metadata.ClusterView)
        brokers = {b.node_id: b for b in view.brokers}
        out: dict[TopicPartition, int] = {}
        here: list[TopicPartition] = []
        remote: dict[BrokerAddress, list[TopicPartition]] = defaultdict(list)
        not_controllers: list[TopicPartition] = []
        for tp in partitions:
            topic = view.topics.get(tp.topic)
            if topic is None:
                if view.brokers:  # not the controller's: maybe the node's own, maybe deleted
                    not_controllers.append(tp)
                else:  # no controller state here yet: it cannot say
                    out[tp] = _NOT_LEADER
                continue
            if tp.partition >= len(topic.partitions):
                out[tp] = MARKER_GONE
                continue
            leader = topic.partitions[tp.partition].leader
            if leader == core.broker.node_id:
                here.append(tp)
            elif leader in brokers:
                remote[brokers[leader]].append(tp)
            else:
                out[tp] = _NOT_LEADER
        jobs = [self._local(markers, tuple(here))] if here else []
        if not_controllers:
            jobs.append(self._write_here(markers, tuple(not_controllers)))
        jobs += [self._remote(b, markers, tuple(tps)) for b, tps in remote.items()]
        for answer in await asyncio.gather(*jobs):
            out.update(answer)
        return out

    async def _remote(self, broker: BrokerAddress, markers: WriteMarkers,
                      partitions: tuple[TopicPartition, ...]) -> dict[TopicPartition, int]:
        try:
            response = await kafka_client.call(
                broker.host, broker.port, _markers_request(markers, partitions),
                _MARKERS_VERSION, m.write_txn_markers.WriteTxnMarkersResponse,
                self.core.config.controller_timeout_s)
        except Exception as exc:  # a peer's wire boundary: refused, reset, slow, bad bytes
            _log.warning("txn_markers_send_failed", broker=broker.node_id, error=repr(exc))
            return dict.fromkeys(partitions, _NOT_LEADER)  # the host asks again later
        found = _errors(response)
        return {tp: found.get(tp, _NOT_LEADER) for tp in partitions}
