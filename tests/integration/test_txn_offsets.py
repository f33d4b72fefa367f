"""TxnOffsetCommit (KIP-98) on a real broker, raw requests on one connection: the offsets of an
open transaction are written (NONE) but not shown: OffsetFetch v6 answers the last committed
offset, v7 with require_stable UNSTABLE_OFFSET_COMMIT (KIP-447); a partition of an unknown topic
answers UNKNOWN_TOPIC_OR_PARTITION. (The marker that settles them, WriteTxnMarkers, is the
transaction coordinator's; its effect is tested through the group host in
tests/actors/test_group_host_txn.py.)"""

from __future__ import annotations

import socket
import struct
from typing import Any

from broker_proc import BrokerProcess, create_topic, recv_exact

from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey, request_header_version, response_header_version
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader

TIMEOUT = 20.0
GROUP = "txn-offsets-group"


def _ask(sock: socket.socket, key: ApiKey, version: int, request: Any, corr: int) -> Any:
    body = RequestHeader(key, version, corr, "txn-offsets-test").encode(
        request_header_version(key, version)) + request.encode(version)
    sock.sendall(struct.pack(">i", len(body)) + body)
    frame = recv_exact(sock, struct.unpack(">i", recv_exact(sock, 4))[0])
    head, pos = ResponseHeader.decode_from(frame, 0, response_header_version(key, version))
    assert head.correlation_id == corr
    return m.RESPONSES[key].decode(frame[pos:], version)  # type: ignore[attr-defined]


def test_txn_offset_commit_is_pending_and_unstable(broker: BrokerProcess) -> None:
    topic = "txn-offsets"
    create_topic(broker.bootstrap, topic, 2)
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        oc = m.offset_commit
        committed = _ask(sock, ApiKey.OFFSET_COMMIT, 8, oc.OffsetCommitRequest(
            group_id=GROUP, generation_id_or_member_epoch=-1, topics=(oc.OffsetCommitRequestTopic(
                topic, (oc.OffsetCommitRequestPartition(0, 5),)),)), 1)
        assert committed.topics[0].partitions[0].error_code == ErrorCode.NONE

        tc = m.txn_offset_commit
        for corr, version in ((2, 3), (3, 0)):
            resp = _ask(sock, ApiKey.TXN_OFFSET_COMMIT, version, tc.TxnOffsetCommitRequest(
                transactional_id="tx", group_id=GROUP, producer_id=77, producer_epoch=0,
                topics=(tc.TxnOffsetCommitRequestTopic(topic, (
                    tc.TxnOffsetCommitRequestPartition(0, 10 + version),
                    tc.TxnOffsetCommitRequestPartition(1, 20))),
                    tc.TxnOffsetCommitRequestTopic("no-such-topic", (
                        tc.TxnOffsetCommitRequestPartition(0, 1),)))), corr)
            assert [[p.error_code for p in t.partitions] for t in resp.topics] == [
                [ErrorCode.NONE, ErrorCode.NONE], [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]]

        of = m.offset_fetch
        asked = (of.OffsetFetchRequestTopic(topic, (0, 1)),)
        old = _ask(sock, ApiKey.OFFSET_FETCH, 6, of.OffsetFetchRequest(GROUP, asked), 4)
        assert [(p.committed_offset, p.error_code) for p in old.topics[0].partitions] == [
            (5, ErrorCode.NONE), (-1, ErrorCode.NONE)]
        stable = _ask(sock, ApiKey.OFFSET_FETCH, 7, of.OffsetFetchRequest(
            GROUP, asked, require_stable=True), 5)
        assert [(p.committed_offset, p.error_code) for p in stable.topics[0].partitions] == [
            (-1, ErrorCode.UNSTABLE_OFFSET_COMMIT), (-1, ErrorCode.UNSTABLE_OFFSET_COMMIT)]
        loose = _ask(sock, ApiKey.OFFSET_FETCH, 7, of.OffsetFetchRequest(GROUP, asked), 6)
        assert [p.committed_offset for p in loose.topics[0].partitions] == [5, -1]
