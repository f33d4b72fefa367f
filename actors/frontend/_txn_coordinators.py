"""Finding and asking the transaction coordinators: the hosts of `__transaction_state`.

Concern: the topic (created on first use, as `__consumer_offsets` is: single node a partition
per core, each partition's host opened on its owning core on first use; cluster mode a small
fixed count through the controller, replicated on min(3, active brokers) nodes, each node's
replicas opened with their hosts by the controller backend, the leader serving) and `call`:
the answer of a transactional id's coordinator (the host of partition
`partition_for(transactional_id)`, Kafka's rule), or the given NOT_COORDINATOR result when it
cannot be reached here, so clients look for the coordinator again. A support module of the
frontends (FindCoordinator in `groups`, the transaction APIs in `transactions`). Must not know:
the transaction protocol (`cluster/txn`), the wire shapes, Raft.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import pykka
import structlog

from redshank.actors._async import resolve
from redshank.actors.frontend._internal_topics import cluster_view, local_topic
from redshank.actors.frontend.services import OWNER_GONE, CoreServices
from redshank.actors.partition_manager import MANAGER, EnsureTxnHost
from redshank.actors.txn_host import TXN_TOPIC, TxnCall, txn_host_name
from redshank.cluster.group import partition_for
from redshank.cluster.kafka import TopicInfo
from redshank.cluster.kafka import handlers as h
from redshank.cluster.txn.api import TxnRequest, TxnResult

__all__ = ["CLUSTER_TXN_PARTITIONS", "TXN_MAX_REPLICATION", "call", "call_all", "txn_view"]

R = TypeVar("R", bound=TxnResult)
# `__transaction_state` in cluster mode (Kafka's transaction.state.log.num.partitions is 50):
# each partition is a Raft group ticking on every node hosting it even when idle, as for
# `__consumer_offsets` (CLUSTER_GROUPS_PARTITIONS); 4 still spreads the coordinators over a
# small cluster. Fixed once created: transactional ids are placed by it.
CLUSTER_TXN_PARTITIONS = 4
# Kafka's transaction.state.log.replication.factor: 3, or every active broker when fewer.
TXN_MAX_REPLICATION = 3
_log = structlog.get_logger("redshank.txn")


async def _txn_topic(core: CoreServices) -> TopicInfo:
    """Single node: `__transaction_state`, created on first use."""
    return await local_topic(core, TXN_TOPIC)


async def txn_view(core: CoreServices) -> h.metadata.ClusterView | None:
    """Cluster mode: the controller's view of `__transaction_state` with its partitions'
    leaders; None while it cannot say, or the topic is still being created (through the
    controller, here, on first use)."""
    return await cluster_view(core, TXN_TOPIC, CLUSTER_TXN_PARTITIONS, TXN_MAX_REPLICATION,
                              _log, "txn_topic_created")


async def _ask(core: CoreServices, info: TopicInfo, p: int, request: TxnRequest,
               unavailable: R) -> R:
    """Ask the coordinator of partition `p` (single node: opened on its core on first use;
    cluster mode: this node's replica, NOT_COORDINATOR unless it leads); `unavailable` if
    it cannot answer."""
    owner = info.cores[p]
    name = txn_host_name(p)
    try:
        if not info.replicated and name not in core.ensured:
            # Answered once the host serves (its log replayed); bounded: a replay that keeps
            # failing answers NOT_COORDINATOR meanwhile, and clients ask again.
            await asyncio.wait_for(resolve(core.router.ref(owner, MANAGER).ask(
                EnsureTxnHost(p), block=False)), core.config.controller_timeout_s)
            core.ensured.add(name)
        try:
            answer: object = await resolve(core.router.ref(owner, name).ask(
                TxnCall(request), block=False))
        except pykka.ActorDeadError:
            core.ensured.discard(name)
            raise
    except (*OWNER_GONE, TimeoutError):
        return unavailable
    assert isinstance(answer, type(unavailable)), answer
    return answer


async def _topic(core: CoreServices, create: bool = True) -> TopicInfo | None:
    """The topic as this core knows it (cluster mode: None when this node hosts no replica
    of it, or it does not exist yet; single node: created on first use if `create`)."""
    if core.cluster_mode:
        info = core.topics.get(TXN_TOPIC)
        return info if info is not None and info.replicated else None
    try:
        if create:
            return await _txn_topic(core)
        infos, _unsure = await core.topic_infos([TXN_TOPIC])
        return infos[TXN_TOPIC]
    except OWNER_GONE:
        return None


async def call(core: CoreServices, transactional_id: str, request: TxnRequest,
               unavailable: R) -> R:
    """The answer of `transactional_id`'s coordinator to `request`, or `unavailable` (carrying
    NOT_COORDINATOR) when it cannot be reached here."""
    info = await _topic(core)
    if info is None:
        return unavailable
    return await _ask(core, info, partition_for(transactional_id, info.partitions), request,
                      unavailable)


async def call_all(core: CoreServices, request: TxnRequest, unavailable: R) -> list[R]:
    """The answers of every coordinator hosted here (cluster mode: the ones this node's
    replicas lead answer; the others NOT_COORDINATOR); none before the topic exists (single
    node: nothing is created to list nothing)."""
    info = await _topic(core, create=False)
    if info is None:
        return []
    return list(await asyncio.gather(*(_ask(core, info, p, request, unavailable)
                                       for p in range(info.partitions))))
