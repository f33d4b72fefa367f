"""A producer's record batch checked as Kafka's log validator does, without decoding a record.

The batch header is signed by its CRC, but a CRC only proves the producer sent these bytes, not
that they are true. Before a broker assigns offsets from `lastOffsetDelta` and stores the batch,
`check_producer_batch` proves what a consumer will need to read it (LogValidator.validateBatch
and DefaultRecordBatch's record iterator, KIP-98):

- the count is positive and `lastOffsetDelta == recordCount - 1`, so offsets are assigned from
  what was counted and a lie can neither rewind a partition nor burn offsets;
- the codec bits name a codec, and a compressed records section decompresses under a cap
  (`compression.decompress`, 64 MiB by default), so a bomb costs at most the cap;
- exactly `recordCount` records fill the records section, each one's length, offset delta
  (0..n-1 in order), key, value and headers within its declared length, every varint at most
  5 bytes and varlong 10, and no byte left over.

The walk reads lengths and deltas only: keys, values and header values are skipped, never
copied (header keys are checked to be UTF-8, as the record reader requires). The section helpers
here (`records_section`, `walk_headers`) are shared with `records`, the full reader for tools.

Must not know: I/O, partitions, error codes (callers map the exceptions), or the message codec.
Raises only the DecodeError family.
"""

from __future__ import annotations

from redshank.protocol.compression import DEFAULT_MAX_DECOMPRESSED_SIZE, codec_of, decompress
from redshank.protocol.errors import CorruptBatchError, CorruptRecordError, DecodeError
from redshank.protocol.record_batch import HEADER_SIZE, BatchHeader, Compression
from redshank.protocol.varint import decode_varint, decode_varlong, zigzag_decode, zigzag_encode

__all__ = [
    "MIN_RECORD_SIZE",
    "check_producer_batch",
    "records_section",
    "walk_headers",
]

Buffer = bytes | bytearray | memoryview
Header = tuple[str, bytes | None]

# length, attributes, timestampDelta, offsetDelta, keyLength, valueLength, headerCount: one
# byte each at the least.
MIN_RECORD_SIZE = 7
_MIN_HEADER_SIZE = 2  # keyLength + valueLength


def records_section(buf: Buffer, pos: int, header: BatchHeader, *,
                    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
                    ) -> tuple[Buffer, int, int]:
    """(data, start, end): where the records of the complete batch at `pos` lie, decompressed
    first when its codec bits say so. Checks that `recordCount` records could fit there.

    UnknownCompressionError for codec bits 5-7; DecompressionError / DecompressionBombError
    from the codec; CorruptBatchError / CorruptRecordError for an impossible count."""
    if header.record_count < 0:
        raise CorruptBatchError(f"record batch has negative record count {header.record_count}")
    start, end = pos + HEADER_SIZE, pos + header.size
    codec = codec_of(header.compression)
    data: Buffer = buf
    if codec != Compression.NONE:
        data = decompress(codec, memoryview(buf)[start:end], max_size=max_decompressed_size)
        start, end = 0, len(data)
    if header.record_count * MIN_RECORD_SIZE > end - start:
        raise CorruptRecordError(
            f"{header.record_count} records cannot fit in {end - start} bytes"
        )
    return data, start, end


def walk_headers(data: Buffer, pos: int, record_end: int, out: list[Header] | None) -> int:
    """Check the record headers at `pos` (count, then key/value per header) lie within
    `record_end`; return the position after them. Appends each (key, value) to `out` unless it
    is None (the validator's walk copies nothing)."""
    count, pos = decode_varint(data, pos)
    if count == 0:
        return pos
    if count < 0 or count * _MIN_HEADER_SIZE > record_end - pos:
        raise CorruptRecordError(f"header count {count} invalid at {pos}")
    for _ in range(count):
        key_length, pos = decode_varint(data, pos)
        stop = pos + key_length
        if key_length < 0 or stop > record_end:
            raise CorruptRecordError(f"header key length {key_length} invalid at {pos}")
        try:
            key = str(data[pos:stop], "utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError(f"header key at {pos} is not UTF-8") from None
        value_length, pos = decode_varint(data, stop)
        if value_length < 0:
            if value_length != -1:
                raise CorruptRecordError(f"header value length {value_length} is negative")
            if out is not None:
                out.append((key, None))
            continue
        stop = pos + value_length
        if stop > record_end:
            raise CorruptRecordError(f"header value of {value_length} bytes overruns its record")
        if out is not None:
            out.append((key, bytes(data[pos:stop])))
        pos = stop
    return pos


def check_producer_batch(buf: Buffer, header: BatchHeader, pos: int = 0, *,
                         max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE) -> None:
    """Prove the complete, CRC-checked batch at `pos` (`header` from `validate_batch`) holds
    what its header says, as a producer must send it: `recordCount` >= 1 records with offset
    deltas 0..n-1 and `lastOffsetDelta == n - 1`. Raises CorruptBatchError (header fields that
    contradict each other), UnknownCompressionError, DecompressionError,
    DecompressionBombError, or CorruptRecordError (the records themselves)."""
    count = header.record_count
    if count <= 0:
        raise CorruptBatchError(f"record count {count} is not positive")
    if header.last_offset_delta != count - 1:
        raise CorruptBatchError(
            f"lastOffsetDelta {header.last_offset_delta} does not match {count} records "
            f"(must be {count - 1})"
        )
    data, start, end = records_section(buf, pos, header,
                                       max_decompressed_size=max_decompressed_size)
    _walk(data, start, end, count)


def _walk(data: Buffer, pos: int, end: int, count: int) -> None:
    # The broker pays this per record on the produce path, so it is written for speed: the
    # varints of one byte (deltas below 64, null keys, no headers) and two (lengths below 8 KiB)
    # are decoded inline, longer ones by `decode_varint`, which bounds them at 5 bytes (varlongs
    # at 10). A read past the buffer's end (IndexError) is a truncated record.
    varint = decode_varint
    expected = 0
    try:
        for expected in range(count):
            b = data[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            elif (c := data[pos + 1]) < 0x80:
                raw = (b & 0x7F) | (c << 7)
                length = (raw >> 1) ^ -(raw & 1)
                pos += 2
            else:
                length, pos = varint(data, pos)
            record_end = pos + length
            if length < MIN_RECORD_SIZE - 1 or record_end > end:
                raise CorruptRecordError(f"record {expected}: length {length} invalid at {pos}")
            # attributes int8 (none defined for magic 2), then timestampDelta varlong: skipped,
            # but a long varlong must still end within 10 bytes.
            pos += 1
            if data[pos] < 0x80:
                pos += 1
            else:
                pos = decode_varlong(data, pos)[1]
            # offsetDelta must be the record's index: compared zigzagged (zigzag(i) = 2i).
            b = data[pos]
            if b < 0x80:
                raw = b
                pos += 1
            elif (c := data[pos + 1]) < 0x80:
                raw = (b & 0x7F) | (c << 7)
                pos += 2
            else:
                raw, pos = varint(data, pos)
                raw = zigzag_encode(raw)
            if raw != expected << 1:
                raise CorruptRecordError(
                    f"record {expected} has offset delta {zigzag_decode(raw)}")
            # key, then value: null (zigzag -1 = 1), or a length and that many bytes.
            for _field in (0, 1):
                b = data[pos]
                if b == 1:
                    pos += 1
                    continue
                if b < 0x80:
                    size = (b >> 1) ^ -(b & 1)
                    pos += 1
                elif (c := data[pos + 1]) < 0x80:
                    raw = (b & 0x7F) | (c << 7)
                    size = (raw >> 1) ^ -(raw & 1)
                    pos += 2
                else:
                    size, pos = varint(data, pos)
                if size < 0:
                    raise CorruptRecordError(f"record {expected}: field length {size}")
                pos += size
            if pos >= record_end:
                raise CorruptRecordError(f"record {expected}: fields overrun its {length} bytes")
            if data[pos] == 0:  # zero headers, the common case
                pos += 1
            else:
                pos = walk_headers(data, pos, record_end, None)
            if pos != record_end:
                raise CorruptRecordError(
                    f"record {expected} declared {length} bytes, its fields end "
                    f"{pos - record_end:+d} off"
                )
    except CorruptRecordError:
        raise
    except IndexError:
        raise CorruptRecordError(
            f"record {expected} is truncated or a field overruns it") from None
    except DecodeError as exc:  # a varint ran off the end, was too long or overflowed
        raise CorruptRecordError(f"record {expected}: field malformed: {exc}") from None
    if pos != end:
        raise CorruptRecordError(f"{end - pos} bytes left after the batch's last record")
