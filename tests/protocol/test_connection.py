"""The sans-IO server connection: framing, ordering, acks=0, limits, the ApiVersions fallback."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from redshank.protocol.api_versions import (
    ADVERTISED,
    request_header_version,
    response_header_version,
)
from redshank.protocol.connection import (
    NEED_DATA,
    ApiVersionsFallback,
    ConnectionClosed,
    Event,
    KafkaServerConnection,
    LocalProtocolError,
    RemoteProtocolError,
    RequestReceived,
    UnsupportedRequest,
)
from redshank.protocol.messages import (
    api_versions,
    heartbeat,
    metadata,
    produce,
    request_header,
    response_header,
)


def frame(api_key: int, version: int, corr: int, body: bytes, client_id: str | None = "c") -> bytes:
    """A request frame as a client writes it (header v1, or v2 when the version is flexible)."""
    hv = request_header_version(api_key, version) if api_key in ADVERTISED else 1
    header = request_header.RequestHeader(api_key, version, corr, client_id).encode(hv)
    return struct.pack(">i", len(header) + len(body)) + header + body


def metadata_frame(corr: int, version: int = 12) -> bytes:
    # v0 has no null topics ([] meant "all"); later versions use null for "all" (notes G13).
    request = metadata.MetadataRequest(topics=None if version else ())
    return frame(3, version, corr, request.encode(version))


def produce_frame(corr: int, acks: int, version: int = 9) -> bytes:
    part = produce.PartitionProduceData(index=0, records=b"\x01" * 70)
    req = produce.ProduceRequest(acks=acks, timeout_ms=100,
                                 topic_data=(produce.TopicProduceData("t", (part,)),))
    return frame(0, version, corr, req.encode(version))


def events(conn: KafkaServerConnection) -> list[Event]:
    out: list[Event] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return out
        out.append(ev)


def received(conn: KafkaServerConnection, data: bytes) -> list[RequestReceived]:
    conn.receive_data(data)
    evs = events(conn)
    assert all(isinstance(e, RequestReceived) for e in evs)
    return [e for e in evs if isinstance(e, RequestReceived)]


def split_responses(data: bytes) -> list[tuple[int, bytes]]:
    """(correlation id, rest) for each response frame in `data` (header v0 prefix)."""
    out, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack_from(">i", data, pos)
        (corr,) = struct.unpack_from(">i", data, pos + 4)
        out.append((corr, data[pos + 8 : pos + 4 + size]))
        pos += 4 + size
    assert pos == len(data)
    return out


def test_request_decoded_and_response_framed_with_flexible_header() -> None:
    conn = KafkaServerConnection()
    [ev] = received(conn, metadata_frame(7))
    assert (ev.api_key, ev.api_version, ev.correlation_id) == (3, 12, 7)
    assert ev.header.client_id == "c" and ev.expects_response
    assert isinstance(ev.request, metadata.MetadataRequest) and ev.request.topics is None
    assert ev.body.readonly and bytes(ev.body) == metadata.MetadataRequest(topics=None).encode(12)
    out = conn.send_response(ev.token, metadata.MetadataResponse(cluster_id="k"))
    header, pos = response_header.ResponseHeader.decode_from(out, 4, 1)
    assert header.correlation_id == 7 and response_header_version(3, 12) == 1
    assert metadata.MetadataResponse.decode(out[pos:], 12).cluster_id == "k"
    assert struct.unpack_from(">i", out)[0] == len(out) - 4


def test_responses_leave_in_request_order_when_completed_out_of_order() -> None:
    conn = KafkaServerConnection()
    pipelined = metadata_frame(1, 1) + frame(12, 4, 2, heartbeat.HeartbeatRequest("g").encode(4)) \
        + metadata_frame(3, 5)
    first, second, third = received(conn, pipelined)
    assert conn.pending_responses == 3
    assert conn.send_response(third.token, metadata.MetadataResponse()) == b""
    out1 = conn.send_response(first.token, metadata.MetadataResponse())
    assert [c for c, _ in split_responses(out1)] == [1]
    out23 = conn.send_response(second.token, heartbeat.HeartbeatResponse(error_code=27))
    assert [c for c, _ in split_responses(out23)] == [2, 3]
    assert conn.pending_responses == 0


def test_acks_zero_produce_takes_no_response_slot() -> None:
    conn = KafkaServerConnection()
    fire, meta = received(conn, produce_frame(1, acks=0) + metadata_frame(2))
    assert not fire.expects_response and meta.expects_response
    assert conn.pending_responses == 1
    # The metadata answer goes out at once: nothing waits for the acks=0 request.
    out = conn.send_response(meta.token, metadata.MetadataResponse())
    assert [c for c, _ in split_responses(out)] == [2]
    with pytest.raises(LocalProtocolError):
        conn.send_response(fire.token, produce.ProduceResponse())
    assert conn.send_response(fire.token, None) == b""


def test_acks_one_produce_records_are_a_zero_copy_view() -> None:
    conn = KafkaServerConnection()
    [ev] = received(conn, produce_frame(5, acks=1))
    records = ev.request.topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and records == b"\x01" * 70 and ev.expects_response


def test_handler_may_answer_nothing_without_stalling_later_responses() -> None:
    conn = KafkaServerConnection()
    a, b = received(conn, metadata_frame(1) + metadata_frame(2))
    assert conn.send_response(b.token, metadata.MetadataResponse()) == b""
    out = conn.send_response(a.token, None)
    assert [c for c, _ in split_responses(out)] == [2]


def test_misuse_is_a_local_error() -> None:
    conn, other = KafkaServerConnection(), KafkaServerConnection()
    [ev] = received(conn, metadata_frame(1))
    with pytest.raises(LocalProtocolError):
        conn.send_response(ev.token, heartbeat.HeartbeatResponse())
    with pytest.raises(LocalProtocolError):
        other.send_response(ev.token, metadata.MetadataResponse())
    conn.send_response(ev.token, metadata.MetadataResponse())
    with pytest.raises(LocalProtocolError):
        conn.send_response(ev.token, metadata.MetadataResponse())


@pytest.mark.parametrize("size", [-1, -(2**31), 0, 7, 1025, 2**31 - 1])
def test_bad_frame_sizes_rejected_on_the_prefix_alone(size: int) -> None:
    conn = KafkaServerConnection(max_frame_size=1024)
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(struct.pack(">i", size))
    assert conn.buffered_bytes == 0  # nothing kept, nothing allocated for the announced body
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(metadata_frame(1))


def test_oversized_frame_rejected_even_when_prefix_arrives_in_pieces() -> None:
    conn = KafkaServerConnection(max_frame_size=1024)
    conn.receive_data(b"\x00\x00")
    assert conn.next_event() is NEED_DATA
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"\x04\x01")


def test_buffered_bytes_are_bounded() -> None:
    with pytest.raises(ValueError):
        KafkaServerConnection(max_frame_size=1024, max_buffered_bytes=1000)
    conn = KafkaServerConnection(max_frame_size=1024, max_buffered_bytes=1500)
    one = metadata_frame(1)
    with pytest.raises(RemoteProtocolError):
        for _ in range(1500 // len(one) + 1):
            conn.receive_data(one)


def test_frames_split_byte_by_byte() -> None:
    stream = metadata_frame(1) + produce_frame(2, acks=-1, version=7) + metadata_frame(3, 0)
    whole = KafkaServerConnection()
    expected = received(whole, stream)
    conn = KafkaServerConnection()
    got: list[RequestReceived] = []
    for i in range(len(stream)):
        got += received(conn, stream[i : i + 1])
    assert [(e.correlation_id, e.api_version, e.request) for e in got] == [
        (e.correlation_id, e.api_version, e.request) for e in expected
    ]
    assert [e.correlation_id for e in got] == [1, 2, 3]


def test_api_versions_fallback_bytes_field_by_field() -> None:
    conn = KafkaServerConnection()
    # A future ApiVersions v9 with a body we cannot know: answered, never decoded.
    conn.receive_data(frame(18, 9, 77, b"\x02zz\x00\xff\xff", client_id="future"))
    [ev] = events(conn)
    assert isinstance(ev, ApiVersionsFallback) and (ev.correlation_id, ev.api_version) == (77, 9)
    data = ev.data
    (size,) = struct.unpack_from(">i", data, 0)
    assert size == len(data) - 4
    (corr,) = struct.unpack_from(">i", data, 4)  # header v0: correlation id only
    (error_code,) = struct.unpack_from(">h", data, 8)
    assert (corr, error_code) == (77, 35)
    (count,) = struct.unpack_from(">i", data, 10)  # v0 layout: int32 array length
    assert count == len(ADVERTISED)
    entries = [struct.unpack_from(">hhh", data, 14 + 6 * i) for i in range(count)]
    assert entries == [(k, lo, hi) for k, (lo, hi) in sorted(ADVERTISED.items())]
    assert len(data) == 14 + 6 * count  # no throttle time, no tagged fields in v0
    assert 69 not in dict((k, 0) for k, _, _ in entries)
    assert 71 not in dict((k, 0) for k, _, _ in entries)


def test_api_versions_fallback_waits_for_earlier_responses() -> None:
    conn = KafkaServerConnection()
    conn.receive_data(metadata_frame(1) + frame(18, 5, 2, b""))
    meta, fallback = events(conn)
    assert isinstance(meta, RequestReceived) and isinstance(fallback, ApiVersionsFallback)
    assert fallback.data == b""
    out = conn.send_response(meta.token, metadata.MetadataResponse())
    assert [c for c, _ in split_responses(out)] == [1, 2]


@pytest.mark.parametrize("version", [0, 3, 4])
def test_api_versions_response_header_is_always_v0(version: int) -> None:
    conn = KafkaServerConnection()
    body = api_versions.ApiVersionsRequest("redshank-test", "1").encode(version)
    [ev] = received(conn, frame(18, version, 9, body))
    reply = api_versions.ApiVersionsResponse(api_keys=(api_versions.ApiVersion(18, 0, 4),))
    out = conn.send_response(ev.token, reply)
    [(corr, rest)] = split_responses(out)
    assert corr == 9 and api_versions.ApiVersionsResponse.decode(rest, version) == reply


@pytest.mark.parametrize(("key", "version"), [(1000, 0), (0, 2), (1, 13), (69, 0), (71, 0)])
def test_unknown_api_key_or_version_is_a_typed_event(key: int, version: int) -> None:
    conn = KafkaServerConnection()
    conn.receive_data(frame(key, version, 5, b"\x00\x00\x00", client_id="who"))
    [ev] = events(conn)
    assert ev == UnsupportedRequest(key, version, 5, "who")
    assert conn.pending_responses == 0


def test_undecodable_body_kills_the_connection() -> None:
    conn = KafkaServerConnection()
    bad = frame(3, 12, 1, b"\x05\x01")  # topics says 4 entries; none follow
    conn.receive_data(bad)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_bytes_after_a_request_are_ignored_as_kafka_does() -> None:
    # librdkafka 2.16 sends Metadata v12 "all topics" requests with 3 bytes after the body;
    # Kafka's parser ignores them, so must we (a closed connection here broke list_topics()).
    request = metadata.MetadataRequest(topics=None)
    body = request.encode(12)
    conn = KafkaServerConnection()
    (plain,) = received(conn, frame(3, 12, 1, body))
    (padded,) = received(conn, frame(3, 12, 2, body + b"\x00\x00\x00"))
    assert plain.request == padded.request == request
    assert (plain.correlation_id, padded.correlation_id) == (1, 2)


def test_end_of_stream() -> None:
    conn = KafkaServerConnection()
    conn.receive_data(metadata_frame(1))
    conn.receive_data(b"")
    first: Any = conn.next_event()
    assert isinstance(first, RequestReceived)
    assert isinstance(conn.next_event(), ConnectionClosed)
    cut = KafkaServerConnection()
    cut.receive_data(metadata_frame(1)[:-1])
    cut.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        cut.next_event()


def test_flexible_request_header_v2_with_tagged_fields() -> None:
    conn = KafkaServerConnection()
    body = produce.ProduceRequest(acks=-1).encode(9)
    header = request_header.RequestHeader(0, 9, 3, "x").encode(2)
    assert header.endswith(b"\x00") and header[8:11] == b"\x00\x01x"  # client_id stays int16
    [ev] = received(conn, struct.pack(">i", len(header) + len(body)) + header + body)
    assert ev.request == produce.ProduceRequest(acks=-1)
    out = conn.send_response(ev.token, produce.ProduceResponse())
    assert out[8:9] == b"\x00"  # response header v1: an empty tagged section after the id
