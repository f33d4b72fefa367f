"""Record batches that lie: CRC-valid (the CRC is recomputed after every lie, so only the lie
remains) yet wrong about their records, and the raw Produce requests that carry them.

Shared by the validator's unit tests (tests/protocol), the produce-handler tests and the
integration and fuzz tests here. The bombs are built directly (a deflate block repeated after a
full flush, zstd RLE blocks), so a 1 GiB or 4 GiB bomb costs milliseconds to make."""

from __future__ import annotations

import socket
import struct
import zlib
from typing import Any

import crc32c

from redshank.protocol.api_versions import request_header_version, response_header_version
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.fetch import (
    FetchPartition,
    FetchRequest,
    FetchResponse,
    FetchTopic,
    PartitionData,
)
from redshank.protocol.messages.produce import (
    PartitionProduceData,
    PartitionProduceResponse,
    ProduceRequest,
    ProduceResponse,
    TopicProduceData,
)
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader
from redshank.protocol.record_batch import HEADER_SIZE, Compression
from redshank.protocol.records import BatchBuilder
from redshank.protocol.varint import encode_varint, encode_varlong

__all__ = ["EXPECTED_CODE", "LIES", "POISON", "RawClient", "batch", "forge", "gzip_bomb", "lie",
           "parse_produce_response", "produce_frame", "record", "seal", "zstd_bomb"]

T0 = 1_700_000_000_000
_HEADER = struct.Struct(">qiibIhiqqqhii")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_COUNT = struct.Struct(">i")
_ATTRIBUTES = struct.Struct(">h")


def seal(buf: bytearray, pos: int = 0) -> bytes:
    """Recompute the CRC32C of the batch at `pos` (whose batchLength is right) in place."""
    length = struct.unpack_from(">i", buf, pos + 8)[0]
    struct.pack_into(">I", buf, pos + 17, crc32c.crc32c(bytes(buf[pos + 21:pos + 12 + length])))
    return bytes(buf)


def forge(section: bytes, *, count: int, last_offset_delta: int,
          compression: int = Compression.NONE, producer_id: int = -1) -> bytes:
    """A batch around a records section (already compressed if `compression` says so), header
    fields as given, CRC fixed."""
    out = bytearray(HEADER_SIZE) + section
    _HEADER.pack_into(out, 0, 0, len(out) - 12, -1, 2, 0, compression, last_offset_delta,
                      T0, T0, producer_id, 0 if producer_id >= 0 else -1,
                      0 if producer_id >= 0 else -1, count)
    return seal(out)


def record(delta: int, value: bytes = b"v", *, length: bytes | None = None,
           tail: bytes = b"\x00") -> bytes:
    """One record: attributes 0, timestampDelta 0, offsetDelta `delta`, null key, `value`,
    then `tail` (the header count, 0). `length` replaces the record's true length prefix."""
    body = b"\x00\x00" + encode_varint(delta) + b"\x01" + encode_varint(len(value)) + value + tail
    return (encode_varint(len(body)) if length is None else length) + body


def batch(n: int = 3, *, compression: Compression = Compression.NONE, value: bytes = b"v" * 20,
          producer_id: int = -1) -> bytes:
    """A valid batch of `n` records as a producer writes it."""
    builder = BatchBuilder(compression=compression, producer_id=producer_id,
                           producer_epoch=0 if producer_id >= 0 else -1,
                           base_sequence=0 if producer_id >= 0 else -1)
    for i in range(n):
        builder.append(value + str(i).encode(), key=b"k%d" % i, timestamp=T0 + i)
    return builder.build()


def lie(good: bytes, *, last_offset_delta: int | None = None, count: int | None = None,
        attributes: int | None = None) -> bytes:
    """`good` with header fields replaced and its CRC fixed."""
    buf = bytearray(good)
    if last_offset_delta is not None:
        _LAST_OFFSET_DELTA.pack_into(buf, 23, last_offset_delta)
    if count is not None:
        _COUNT.pack_into(buf, 57, count)
    if attributes is not None:
        _ATTRIBUTES.pack_into(buf, 21, attributes)
    return seal(buf)


def gzip_bomb(decompressed: int = 1 << 30) -> bytes:
    """A gzip member of `decompressed` zero bytes (1 GiB in ~1 MB), without its trailer: a
    decoder hits any cap below that size before it could miss the CRC."""
    chunk = bytes(1 << 20)
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    second = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    third = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    assert second == third  # a full flush resets the window: every later MiB is the same bytes
    return first + second * (decompressed // len(chunk) - 1)


def zstd_bomb(decompressed: int = 4 << 30) -> bytes:
    """A zstd frame of `decompressed` zero bytes (4 GiB in 131 KB): RLE blocks of 128 KiB, each
    a 3-byte block header and the byte to repeat (RFC 8878 3.1.1.2)."""
    block = 128 * 1024
    blocks = decompressed // block
    # Descriptor 0 (no content size, no checksum), window descriptor 2^17 bytes.
    header = b"\x28\xb5\x2f\xfd\x00" + bytes(((17 - 10) << 3,))
    rle = (1 << 1) | (block << 3)
    middle = rle.to_bytes(3, "little") + b"\x00"
    last = (rle | 1).to_bytes(3, "little") + b"\x00"
    return header + middle * (blocks - 1) + last


# The header lies (on a valid 3-record batch) and the poison batches the validator must refuse.
def _lies() -> dict[str, bytes]:
    good = batch(3)
    return {
        "negative_delta": lie(good, last_offset_delta=-1000),
        "huge_delta": lie(good, last_offset_delta=2**31 - 1),
        "positive_delta": lie(good, last_offset_delta=2 + 5),
        "count_mismatch": lie(good, count=5),
        "count_and_delta_lie": lie(good, count=5, last_offset_delta=4),  # 3 records present
    }


def _poison() -> dict[str, bytes]:
    eleven = b"\xff" * 10 + b"\x01"
    forty = encode_varlong(1 << 40)  # a varint too wide for an int32: 6 bytes
    return {
        "codec_5": lie(batch(3), attributes=5),
        "codec_6": lie(batch(3), attributes=6),
        "codec_7": lie(batch(3), attributes=7),
        "varint_11_bytes": forge(record(0, length=eleven), count=1, last_offset_delta=0),
        "length_2_pow_40": forge(record(0, length=forty), count=1, last_offset_delta=0),
        "gzip_bomb": forge(gzip_bomb(), count=1, last_offset_delta=0,
                           compression=Compression.GZIP),
        "zstd_bomb": forge(zstd_bomb(), count=1, last_offset_delta=0,
                           compression=Compression.ZSTD),
    }


LIES = _lies()
POISON = _poison()
# What Kafka answers (see cluster/kafka/handlers/produce.py::check_records): INVALID_RECORD for
# signed bytes that break the rules; the bombs pass the decompression cap: MESSAGE_TOO_LARGE.
EXPECTED_CODE: dict[str, ErrorCode] = {
    **{name: ErrorCode.INVALID_RECORD for name in [*LIES, *POISON]},
    "gzip_bomb": ErrorCode.MESSAGE_TOO_LARGE,
    "zstd_bomb": ErrorCode.MESSAGE_TOO_LARGE,
}


def produce_frame(topic: str, partition: int, records: bytes, *, acks: int = -1,
                  correlation_id: int = 1, version: int = 9, timeout_ms: int = 10_000) -> bytes:
    """A size-prefixed Produce request, from the generated codec."""
    request = ProduceRequest(acks=acks, timeout_ms=timeout_ms, topic_data=(
        TopicProduceData(topic, (PartitionProduceData(partition, records),)),))
    header = RequestHeader(0, version, correlation_id, "poison")
    body = header.encode(2 if version >= 9 else 1) + request.encode(version)
    return struct.pack(">i", len(body)) + body


def parse_produce_response(frame: bytes, version: int = 9) -> tuple[int, ProduceResponse]:
    """(correlation id, response) of a Produce response frame without its size prefix."""
    header, pos = ResponseHeader.decode_from(frame, 0, 1 if version >= 9 else 0)
    response, _ = ProduceResponse.decode_from(frame, pos, version)
    return header.correlation_id, response


class RawClient:
    """One blocking Kafka connection for requests built with the generated codec; every read is
    bounded by the socket's timeout (a hang fails the test instead of stalling it)."""

    def __init__(self, bootstrap: str, timeout: float = 15.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.correlation_id = 0

    def produce(self, topic: str, partition: int, records: bytes, *, acks: int = -1
                ) -> PartitionProduceResponse | None:
        """The partition's response (None for acks=0, which gets none)."""
        self.correlation_id += 1
        self.sock.sendall(produce_frame(topic, partition, records, acks=acks,
                                        correlation_id=self.correlation_id))
        if acks == 0:
            return None
        correlation_id, response = parse_produce_response(self._frame())
        assert correlation_id == self.correlation_id
        (t,) = response.responses
        (p,) = t.partition_responses
        assert (t.name, p.index) == (topic, partition)
        return p

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 8 << 20
              ) -> PartitionData:
        """One partition's Fetch v11 answer (no wait): its records as stored."""
        self.correlation_id += 1
        request = FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, topics=(
            FetchTopic(topic=topic, partitions=(FetchPartition(
                partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes),)),))
        body = (RequestHeader(FetchRequest.API_KEY, 11, self.correlation_id, "poison").encode(1)
                + request.encode(11))
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        frame = self._frame()
        header, pos = ResponseHeader.decode_from(frame, 0, 0)
        assert header.correlation_id == self.correlation_id
        response, _ = FetchResponse.decode_from(frame, pos, 11)
        (t,) = response.responses
        (p,) = t.partitions
        return p

    def call(self, request: Any, version: int, response_type: Any) -> Any:
        """Any request of the generated codec at `version`, and its decoded response."""
        self.correlation_id += 1
        key = request.API_KEY
        body = (RequestHeader(key, version, self.correlation_id, "raw").encode(
            request_header_version(key, version)) + request.encode(version))
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        frame = self._frame()
        header, pos = ResponseHeader.decode_from(frame, 0, response_header_version(key, version))
        assert header.correlation_id == self.correlation_id
        response, _ = response_type.decode_from(frame, pos, version)
        return response

    def _frame(self) -> bytes:
        size = struct.unpack(">i", self._recv(4))[0]
        return self._recv(size)

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def close(self) -> None:
        self.sock.close()
