"""Re-encoding one record batch's records section with another codec.

Concern: what a broker does to a producer's batch when the topic's compression.type names a
codec other than the batch's (Kafka's LogValidator, "recompression"): the records section is
decompressed (under the same cap as validation), compressed with the topic's codec, and the
header's codec bits, batchLength and CRC32C are rewritten. Offsets, timestamps, producer fields
and the records themselves are unchanged. Must not know: topics, configs, logs.
"""

from __future__ import annotations

import struct

from redshank.protocol.compression import DEFAULT_MAX_DECOMPRESSED_SIZE, compress, decompress
from redshank.protocol.record_batch import (
    BATCH_OVERHEAD,
    HEADER_SIZE,
    BatchHeader,
    Compression,
    batch_crc,
    parse_header,
)

__all__ = ["recompress"]

_LENGTH = struct.Struct(">i")
_LENGTH_AT = 8
_CRC = struct.Struct(">I")
_CRC_AT = 17
_ATTRIBUTES = struct.Struct(">h")
_ATTRIBUTES_AT = 21
_CODEC_MASK = 0x07


def recompress(batch: bytes | bytearray | memoryview, header: BatchHeader, codec: Compression,
               level: int | None = None,
               max_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE) -> bytes:
    """The complete, valid batch `batch` (header `header`) with its records in `codec`.
    Raises the DecodeError family as `decompress` does (the batch was validated before)."""
    body = memoryview(batch)[HEADER_SIZE:header.size]
    packed = compress(codec, decompress(header.compression, body, max_size=max_size),
                      level=level)
    out = bytearray(memoryview(batch)[:HEADER_SIZE])
    out += packed
    _LENGTH.pack_into(out, _LENGTH_AT, len(out) - BATCH_OVERHEAD)
    _ATTRIBUTES.pack_into(out, _ATTRIBUTES_AT, (header.attributes & ~_CODEC_MASK) | codec)
    _CRC.pack_into(out, _CRC_AT, batch_crc(out, 0, parse_header(out)))
    return bytes(out)
