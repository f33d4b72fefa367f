"""WriteTxnMarkers (27): COMMIT/ABORT control batches appended to the partitions of a transaction.

Concern: the request path of API 27, also called in-process by the transaction host
(actors/txn_host.py) for the partitions this node leads: each marker's partitions are routed
to their owning core's partition leader (as produce routes a batch) with acks=all, so a
partition answers once its marker is committed; a partition this node does not lead answers
NOT_LEADER_OR_FOLLOWER; a `__consumer_offsets` partition is handed to its group host
(`frontend.groups.write_txn_marker`), which appends the marker and settles the transaction's
pending offsets. Must not know: the marker's bytes and the response's shape
(`cluster/kafka/handlers/write_txn_markers`), what a partition does with a marker
(`cluster/kafka/producer_state`).
"""

from __future__ import annotations

import asyncio
import time

from redshank.actors.frontend import groups
from redshank.actors.frontend._registry import serves
from redshank.actors.frontend.services import OWNER_GONE, CoreServices
from redshank.actors.group_host import GROUPS_TOPIC
from redshank.cluster.kafka.handlers import write_txn_markers as markers_h
from redshank.cluster.kafka.handlers.produce import PartitionWrite
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode

__all__ = ["write_txn_markers"]


@serves(ApiKey.WRITE_TXN_MARKERS)
async def write_txn_markers(core: CoreServices,
                            request: m.write_txn_markers.WriteTxnMarkersRequest, version: int
                            ) -> m.write_txn_markers.WriteTxnMarkersResponse:
    del version  # v1 is v0 made flexible
    names = list({t.name for mk in request.markers for t in mk.topics})
    infos, unsure = await core.topic_infos(names)
    writes, results = markers_h.plan(request, infos)
    for key, code in results.items():
        if key[1] in unsure and code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            results[key] = ErrorCode.NOT_LEADER_OR_FOLLOWER  # not known to be missing
    codes = await asyncio.gather(*(_write(core, w) for w in writes))
    for w, code in zip(writes, codes, strict=True):
        results[(w.index, w.tp.topic, w.tp.partition)] = code
    return markers_h.build(request, results)


async def _write(core: CoreServices, w: markers_h.MarkerWrite) -> int:
    if w.tp.topic == GROUPS_TOPIC:
        return await groups.write_txn_marker(core, w.tp.partition, w.producer_id,
                                             w.producer_epoch, w.commit, w.coordinator_epoch)
    batch = markers_h.control_batch(w, int(time.time() * 1000))
    try:
        _sequenced, acked = await core.append_two_phase(
            PartitionWrite(w.tp, w.core, batch, None), -1)
        return (await acked).error_code
    except OWNER_GONE as exc:
        return core.owner_gone(w.tp, exc).error_code
