"""Leadership APIs: ElectLeaders, and Alter/ListPartitionReassignments (reordering replicas).

Concern: the views ElectLeaders is judged against (`cluster/kafka/handlers/elect_leaders.py`)
and how long it waits for them. In cluster mode the controller service's view of the asked
topics (each partition's replicas, preferred first, and its leader as the Raft groups know
it), looked at again every `POLL_S` until every partition has a final answer or the request's
timeout passes (a preferred replica takes leadership on its own once caught up). On a single
node every partition has one replica, its leader: no election is ever needed.
AlterPartitionReassignments that reorder a partition's replicas move its preferred replica
through the controller (`ProposePreferred`); leadership follows within a tick or two once that
replica is caught up. Must not know: how leadership moves (the partitions' balance), the wire
shapes.
"""

from __future__ import annotations

import asyncio
import time

from redshank.actors._async import resolve
from redshank.actors.controller_admin import ProposePreferred, ReplicaOrders
from redshank.actors.controller_service import CONTROLLER_SERVICE, DescribeTopics
from redshank.actors.frontend._registry import serves
from redshank.actors.frontend.services import CoreServices
from redshank.cluster.kafka import handlers as h
from redshank.cluster.kafka.handlers.metadata import ReplicatedPartition, ReplicatedTopic
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey

__all__ = ["POLL_S"]

POLL_S = 0.2
MAX_WAIT_S = 30.0  # whatever the request's timeout says


async def _view(core: CoreServices, names: tuple[str, ...] | None
                ) -> dict[str, ReplicatedTopic]:
    if core.cluster_mode:
        cluster = await resolve(core.router.ref(0, CONTROLLER_SERVICE).ask(
            DescribeTopics(names), block=False))
        return dict(cluster.topics)
    result = await core.lookup(names)
    me = core.broker.node_id
    return {name: ReplicatedTopic(info.topic_id, tuple(
        ReplicatedPartition((me,), me, 0) for _ in range(info.partitions)))
        for name, info in result.topics.items() if info is not None}


@serves(ApiKey.ELECT_LEADERS)
async def elect_leaders(core: CoreServices, request: m.elect_leaders.ElectLeadersRequest,
                        version: int) -> m.elect_leaders.ElectLeadersResponse:
    election = request.election_type if version >= 1 else h.elect_leaders.PREFERRED
    names = None if request.topic_partitions is None else tuple(
        {t.topic: None for t in request.topic_partitions})
    deadline = time.monotonic() + min(max(request.timeout_ms, 0) / 1000, MAX_WAIT_S)
    topics = await _view(core, names)
    pairs = h.elect_leaders.asked(request, topics)
    verdicts = {pair: h.elect_leaders.judge(election, topics.get(pair[0]), pair[1], True)
                for pair in pairs}
    while any(not v.final for v in verdicts.values()) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        topics = await _view(core, names)
        for pair, v in verdicts.items():
            if not v.final:
                verdicts[pair] = h.elect_leaders.judge(election, topics.get(pair[0]), pair[1],
                                                       False)
    return h.elect_leaders.build([(t, p, verdicts[(t, p)]) for t, p in pairs], version)


@serves(ApiKey.ALTER_PARTITION_REASSIGNMENTS)
async def alter_partition_reassignments(
        core: CoreServices,
        request: m.alter_partition_reassignments.AlterPartitionReassignmentsRequest,
        version: int) -> m.alter_partition_reassignments.AlterPartitionReassignmentsResponse:
    del version
    pairs = h.reassignments.asked(request)
    names = tuple({t: None for t, _p, _r in pairs})
    current: dict[str, list[list[int]]]
    if core.cluster_mode:
        current = await resolve(core.router.ref(0, CONTROLLER_SERVICE).ask(
            ReplicaOrders(names), block=False))
    else:
        result = await core.lookup(names)
        me = core.broker.node_id
        current = {name: [[me]] * info.partitions for name, info in result.topics.items()
                   if info is not None}
    verdicts = [h.reassignments.judge(t, p, r, current) for t, p, r in pairs]
    moves = tuple(v.move for v in verdicts if v.move is not None)
    outcomes = iter(await resolve(core.router.ref(0, CONTROLLER_SERVICE).ask(
        ProposePreferred(moves), block=False)) if moves else [])
    results = []
    for (t, p, _r), v in zip(pairs, verdicts, strict=True):
        code, message = next(outcomes) if v.move is not None else (v.error_code, v.message)
        results.append((t, p, int(code), message))
    return h.reassignments.build(results)


@serves(ApiKey.LIST_PARTITION_REASSIGNMENTS)
def list_partition_reassignments(
        core: CoreServices,
        request: m.list_partition_reassignments.ListPartitionReassignmentsRequest,
        version: int) -> m.list_partition_reassignments.ListPartitionReassignmentsResponse:
    del core, request, version  # a reorder is done when it is answered: none is ever ongoing
    return h.reassignments.build_list()
