"""`redshank bench codec`: the Kafka codec's hot paths, with kafka-python's codec as the baseline
measured in the same run. Prints one JSON object (last line).

- encode / decode of a Produce v9 request carrying one record batch of 100 x 1 KiB records
  (target <= 20 us each way), ours vs kafka-python 3.0;
- the same request through the sans-IO connection (frame -> RequestReceived);
- batch header + CRC32C validation throughput (`record_batch.validate_batch`, GB/s);
- encode of a Fetch v12 response carrying 1 MiB of stored batches (the broker's read path).

Timings are the best of several repeats (least disturbed by the other processes sharing this
2-core machine); compare ratios rather than absolute figures.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections.abc import Callable
from typing import Any

from redshank.protocol.api_versions import request_header_version
from redshank.protocol.connection import KafkaServerConnection, RequestReceived
from redshank.protocol.messages import fetch, produce, request_header
from redshank.protocol.record_batch import validate_batch
from redshank.protocol.records import BatchBuilder
from redshank.tools.bench._timing import best_seconds

__all__ = ["build_batch", "main"]


def build_batch(count: int = 100, value_size: int = 1024, base_offset: int = 0) -> bytes:
    """A valid uncompressed magic-2 batch of `count` records with `value_size`-byte values."""
    value = bytes(range(256)) * (value_size // 256) + bytes(value_size % 256)
    builder = BatchBuilder(base_offset=base_offset)
    for i in range(count):
        builder.append(value, timestamp=1_700_000_000_000 + i)
    return builder.build()


def _best_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    return best_seconds(fn, number=number, repeat=repeat) * 1e6


def _produce_request(batch: bytes) -> produce.ProduceRequest:
    part = produce.PartitionProduceData(index=0, records=batch)
    return produce.ProduceRequest(
        transactional_id=None, acks=-1, timeout_ms=30_000,
        topic_data=(produce.TopicProduceData(name="bench", partition_data=(part,)),),
    )


def _kafka_python(batch: bytes, fetch_batches: bytes, number: int, repeat: int) -> dict[str, Any]:
    try:
        from kafka.protocol.consumer.fetch import FetchResponse as KFetch
        from kafka.protocol.producer.produce import ProduceRequest as KProduce
    except ImportError as exc:  # the baseline is optional; say why it is missing
        return {"error": f"kafka-python unavailable: {exc}"}
    req = KProduce[9](
        transactional_id=None, acks=-1, timeout_ms=30_000,
        topic_data=[KProduce.TopicProduceData(name="bench", partition_data=[
            KProduce.TopicProduceData.PartitionProduceData(index=0, records=batch)])],
    )
    data = req.encode()
    resp = KFetch[12](throttle_time_ms=0, error_code=0, session_id=0, responses=[
        KFetch.FetchableTopicResponse(topic="bench", partitions=[
            KFetch.FetchableTopicResponse.PartitionData(
                partition_index=0, error_code=0, high_watermark=10, last_stable_offset=10,
                log_start_offset=0, aborted_transactions=[], preferred_read_replica=-1,
                records=fetch_batches)])])
    return {
        "produce_encode_us": round(_best_us(lambda: req.encode(), number, repeat), 2),
        "produce_decode_us": round(_best_us(lambda: KProduce.decode(data, version=9), number,
                                            repeat), 2),
        "fetch_1mib_encode_us": round(_best_us(lambda: resp.encode(), max(number // 10, 10),
                                               repeat), 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank bench codec")
    parser.add_argument("--number", type=int, default=2000, help="operations per repeat")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if args.number < 1 or args.repeat < 1:
        parser.error("--number and --repeat must be at least 1")
    number, repeat = args.number, args.repeat

    batch = build_batch()
    validate_batch(batch)
    request = _produce_request(batch)
    data = request.encode(9)
    assert produce.ProduceRequest.decode(data, 9) == request

    header = request_header.RequestHeader(0, 9, 1, "bench").encode(request_header_version(0, 9))
    frame = struct.pack(">i", len(header) + len(data)) + header + data

    def via_connection() -> None:
        conn = KafkaServerConnection()
        conn.receive_data(frame)
        ev = conn.next_event()
        assert isinstance(ev, RequestReceived)

    # ~1 MiB of stored batches (ten batches of 101 x 1 KiB) answered in one Fetch v12 response.
    stored = b"".join(build_batch(count=101, base_offset=i * 101) for i in range(10))
    part = fetch.PartitionData(partition_index=0, high_watermark=10, last_stable_offset=10,
                               records=memoryview(stored))
    fetch_resp = fetch.FetchResponse(
        responses=(fetch.FetchableTopicResponse(topic="bench", partitions=(part,)),)
    )
    fetch_us = _best_us(lambda: fetch_resp.encode(12), max(number // 10, 10), repeat)

    # The same response through the connection: a Fetch v12 request in, the framed reply out.
    fetch_req = fetch.FetchRequest(max_wait_ms=500, min_bytes=1, max_bytes=1 << 20)
    fetch_header = request_header.RequestHeader(1, 12, 2, "bench").encode(2)
    fetch_body = fetch_req.encode(12)
    fetch_frame = struct.pack(">i", len(fetch_header) + len(fetch_body)) + fetch_header + fetch_body
    conn = KafkaServerConnection()

    def fetch_round_trip() -> None:
        conn.receive_data(fetch_frame)
        ev = conn.next_event()
        assert isinstance(ev, RequestReceived)
        conn.send_response(ev.token, fetch_resp)

    fetch_conn_us = _best_us(fetch_round_trip, max(number // 10, 10), repeat)

    big = bytearray(build_batch(count=1000, value_size=1024))
    validate_us = _best_us(lambda: validate_batch(big), max(number // 10, 10), repeat)
    validate_small_us = _best_us(lambda: validate_batch(batch), number, repeat)

    result = {
        "bench": "codec",
        "produce_request": {"version": 9, "records": 100, "value_bytes": 1024,
                            "frame_bytes": len(frame)},
        "ours": {
            "produce_encode_us": round(_best_us(lambda: request.encode(9), number, repeat), 2),
            "produce_decode_us": round(
                _best_us(lambda: produce.ProduceRequest.decode(data, 9), number, repeat), 2),
            "produce_frame_to_event_us": round(_best_us(via_connection, number, repeat), 2),
            "fetch_1mib_encode_us": round(fetch_us, 2),
            "fetch_1mib_gb_per_s": round(len(stored) / fetch_us / 1e3, 2),
            "fetch_1mib_via_connection_us": round(fetch_conn_us, 2),
            "validate_batch_gb_per_s": round(len(big) / validate_us / 1e3, 2),
            "validate_batch_bytes": len(big),
            "validate_100kib_batch_gb_per_s": round(len(batch) / validate_small_us / 1e3, 2),
        },
        "kafka_python": _kafka_python(batch, stored, number, repeat),
        "fetch_bytes": len(stored),
        "note": "best of repeats on a shared 2-core machine; compare ratios",
    }
    kp = result["kafka_python"]
    ours = result["ours"]
    assert isinstance(kp, dict) and isinstance(ours, dict)
    if "produce_encode_us" in kp:
        result["speedup_vs_kafka_python"] = {
            k: round(kp[k] / ours[k], 1) for k in kp if k in ours and ours[k] > 0
        }
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0
