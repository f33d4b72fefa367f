"""Leader epochs as Kafka clients see them (KIP-101/279/320), on a real broker across a kill -9:
Metadata reports each partition's Raft term once its leader serves, fetches and list-offsets
naming an old epoch are fenced and a future one is unknown, ListOffsets answers the epoch of
the offset it found, and OffsetForLeaderEpoch answers where each epoch ends, so a consumer
validating its position after a leader change truncates only what is really gone (nothing)."""

from __future__ import annotations

import time
from pathlib import Path

from broker_proc import BrokerProcess, create_topic
from poison import RawClient, batch

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import fetch as f
from redshank.protocol.messages import list_offsets as lo
from redshank.protocol.messages import metadata as md
from redshank.protocol.messages import offset_for_leader_epoch as ofe
from redshank.protocol.record_batch import iter_batches

TOPIC = "epochs"


def _metadata_epoch(client: RawClient, deadline_s: float = 15.0) -> int:
    """Partition 0's leader epoch in Metadata v12, once its leader's announcement reached the
    core that answers (it is told to every core when the leader starts to serve)."""
    deadline = time.monotonic() + deadline_s
    while True:
        resp = client.call(md.MetadataRequest(topics=(md.MetadataRequestTopic(name=TOPIC),)),
                           12, md.MetadataResponse)
        (t,) = resp.topics
        epoch = int(t.partitions[0].leader_epoch)
        if epoch >= 0 or time.monotonic() > deadline:
            return epoch
        time.sleep(0.05)  # polling for a state another core applies; bounded by the deadline


def _fetch(client: RawClient, offset: int, epoch: int) -> f.PartitionData:
    req = f.FetchRequest(max_wait_ms=0, min_bytes=0, topics=(f.FetchTopic(
        topic=TOPIC, partitions=(f.FetchPartition(partition=0, current_leader_epoch=epoch,
                                                  fetch_offset=offset,
                                                  partition_max_bytes=1 << 20),)),))
    resp = client.call(req, 11, f.FetchResponse)
    (p,) = resp.responses[0].partitions
    return p


def _list(client: RawClient, timestamp: int, epoch: int = -1) -> lo.ListOffsetsPartitionResponse:
    req = lo.ListOffsetsRequest(replica_id=-1, topics=(lo.ListOffsetsTopic(
        name=TOPIC, partitions=(lo.ListOffsetsPartition(partition_index=0,
                                                        current_leader_epoch=epoch,
                                                        timestamp=timestamp),)),))
    (p,) = client.call(req, 7, lo.ListOffsetsResponse).topics[0].partitions
    return p


def _end(client: RawClient, epoch: int, current: int = -1) -> ofe.EpochEndOffset:
    req = ofe.OffsetForLeaderEpochRequest(replica_id=-1, topics=(ofe.OffsetForLeaderTopic(
        TOPIC, (ofe.OffsetForLeaderPartition(0, current, epoch),)),))
    (p,) = client.call(req, 4, ofe.OffsetForLeaderEpochResponse).topics[0].partitions
    return p


def test_epochs_across_a_kill(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data")
    broker.start()
    try:
        create_topic(broker.bootstrap, TOPIC, 1)
        client = RawClient(broker.bootstrap)
        for _ in range(3):
            assert client.produce(TOPIC, 0, batch(2)).error_code == 0  # offsets 0-5
        first = _metadata_epoch(client)
        assert first >= 1
        client.close()
        broker.kill()  # SIGKILL: the partition recovers and its leader starts a new term
        broker.start()
        client = RawClient(broker.bootstrap)
        assert client.produce(TOPIC, 0, batch(4)).error_code == 0  # offsets 6-9
        second = _metadata_epoch(client)
        assert second > first

        data = _fetch(client, 0, second)
        assert data.error_code == 0
        stored = [(h.base_offset, h.partition_leader_epoch)
                  for _, h in iter_batches(bytes(data.records or b""))]
        assert stored == [(0, first), (2, first), (4, first), (6, second)]
        assert _fetch(client, 0, second - 1).error_code == ErrorCode.FENCED_LEADER_EPOCH
        assert _fetch(client, 0, second + 1).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
        assert _fetch(client, 6, -1).error_code == 0  # no epoch named: not checked
        assert _fetch(client, 6, 0).error_code == 0  # 0 names no term: librdkafka's unknown

        earliest, latest = _list(client, -2, second), _list(client, -1, second)
        assert (earliest.offset, earliest.leader_epoch) == (0, first)
        assert (latest.offset, latest.leader_epoch) == (10, second)
        assert _list(client, -1, second - 1).error_code == ErrorCode.FENCED_LEADER_EPOCH

        ends = {e: _end(client, e, second) for e in (0, first, second, second + 1)}
        assert (ends[first].leader_epoch, ends[first].end_offset) == (first, 6)
        assert (ends[second].leader_epoch, ends[second].end_offset) == (second, 10)
        assert (ends[0].leader_epoch, ends[0].end_offset) == (0, 0)
        assert (ends[second + 1].leader_epoch, ends[second + 1].end_offset) == (-1, -1)
        assert _end(client, first, second - 1).error_code == ErrorCode.FENCED_LEADER_EPOCH
        client.close()
    finally:
        broker.stop()
