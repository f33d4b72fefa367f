"""Compression of a record batch's records section: gzip, snappy, lz4, zstd, all through cramjam.

Decoding accepts what real producers write:
- gzip: one or more gzip members (Java's GZIPOutputStream, librdkafka, kafka-python).
- snappy: BOTH the xerial "snappy-java" stream Java, kafka-python and aiokafka write (magic
  `\\x82SNAPPY\\x00`, two big-endian int32s version/compat, then blocks of big-endian int32 length +
  raw snappy block) and the bare raw snappy block librdkafka writes.
- lz4: the LZ4 frame format (Kafka >= 0.10 / magic 2 computes the descriptor checksum correctly).
- zstd: zstd frames.
Encoding writes xerial-framed snappy in 32 KiB blocks (what Java writes, readable by every client)
and LZ4 frames with independent blocks (Java's Lz4BlockInputStream decodes each block alone, so
linked blocks would break Java consumers).

Every decoder is capped: output beyond `max_size` raises `DecompressionBombError` after at most
`max_size` bytes were ever allocated for the output, so a 1 KiB bomb cannot exhaust memory. The
cap works by decompressing into a fixed preallocated buffer (cramjam's `*_into`), which stops
with "failed to write whole buffer" when the buffer is full; the buffer starts at a size hint
(the exact size snappy declares, the gzip ISIZE trailer, the zstd/lz4 frame content size, or a
multiple of the input) and grows 4x up to the cap, so work stays within ~1.4x of one pass.

Must not know: record batch layout, records, or I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import cramjam

from redshank.protocol.errors import (
    DecompressionBombError,
    DecompressionError,
    EncodeError,
    UnknownCompressionError,
)
from redshank.protocol.record_batch import Compression

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "XERIAL_MAGIC",
    "codec_of",
    "compress",
    "decompress",
]

# Far above any sane batch (Kafka's default message.max.bytes is 1 MiB, fetch.max.bytes 50 MiB)
# yet small enough that one connection cannot take the process down.
DEFAULT_MAX_DECOMPRESSED_SIZE = 64 * 1024 * 1024

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_XERIAL_VERSION = 1
_XERIAL_COMPAT = 1
_XERIAL_BLOCK = 32 * 1024  # snappy-java's default block size
_LZ4_FAST = 1
_BE_INT32 = struct.Struct(">i")
_LE_UINT32 = struct.Struct("<I")
_LE_UINT64 = struct.Struct("<Q")

_MIN_GUESS = 64 * 1024
_GUESS_RATIO = 4
_HINT_RATIO = 256
_GROWTH = 4
# Rust's io::ErrorKind::WriteZero message: the fixed output buffer is full and more is pending.
_OUTPUT_FULL = "failed to write whole buffer"

Buffer = bytes | bytearray | memoryview
_IntoFn = Callable[[Buffer, memoryview], int]


def codec_of(bits: int) -> Compression:
    """The `Compression` named by a batch's three codec bits; UnknownCompressionError for 5-7."""
    try:
        return Compression(bits)
    except ValueError:
        raise UnknownCompressionError(f"unknown compression codec {bits}") from None


# --- encode -----------------------------------------------------------------------------------


def compress(codec: Compression, data: Buffer, *, level: int | None = None) -> bytes:
    """Compress `data` with `codec` in the framing Kafka's Java client writes.

    `level` None picks gzip 6 and zstd 3 (Java's defaults) and LZ4's fast mode (librdkafka's and
    pre-3.8 Java's; cramjam's own default is the ~5x slower high-compression mode).
    """
    if codec == Compression.NONE:
        return bytes(data)
    if codec == Compression.GZIP:
        return bytes(cramjam.gzip.compress(data, level=6 if level is None else level))
    if codec == Compression.SNAPPY:
        return _xerial_encode(data)
    if codec == Compression.LZ4:
        compressor = cramjam.lz4.Compressor(
            level=_LZ4_FAST if level is None else level, block_linked=False
        )
        compressor.compress(bytes(data))  # its streaming API takes bytes only
        return bytes(compressor.finish())
    if codec == Compression.ZSTD:
        return bytes(cramjam.zstd.compress(data, level=3 if level is None else level))
    raise EncodeError(f"cannot compress with codec {codec!r}")


def _xerial_encode(data: Buffer) -> bytes:
    view = memoryview(data)
    parts = [_XERIAL_HEADER.pack(XERIAL_MAGIC, _XERIAL_VERSION, _XERIAL_COMPAT)]
    for start in range(0, len(view), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK]))
        parts.append(_BE_INT32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


# --- decode -----------------------------------------------------------------------------------


def decompress(
    codec: Compression | int, data: Buffer, *, max_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
) -> bytes:
    """Decompress a records section; raise only the DecodeError family.

    DecompressionError: truncated or corrupt input. DecompressionBombError: the output would pass
    `max_size` bytes. UnknownCompressionError: codec bits 5-7.
    """
    codec = codec_of(int(codec))
    if codec == Compression.NONE:
        if len(data) > max_size:
            raise DecompressionBombError(f"{len(data)} bytes exceed the cap of {max_size}")
        return bytes(data)
    try:
        if codec == Compression.SNAPPY:
            return _snappy_decode(data, max_size)
        if codec == Compression.GZIP:
            return _bounded(cramjam.gzip.decompress_into, data, max_size, _gzip_hint(data))
        if codec == Compression.LZ4:
            return _bounded(cramjam.lz4.decompress_into, data, max_size, _lz4_hint(data))
        return _bounded(cramjam.zstd.decompress_into, data, max_size, _zstd_hint(data))
    except cramjam.DecompressionError as exc:
        raise DecompressionError(f"{codec.name.lower()}: {exc}") from None


def _bounded(into: _IntoFn, data: Buffer, max_size: int, hint: int | None) -> bytes:
    # A hint comes from the (untrusted) input: believe it only up to a ratio real data reaches,
    # so a lying 20-byte header cannot make us allocate the whole cap at once.
    size = max(_MIN_GUESS, _GUESS_RATIO * len(data))
    if hint is not None:
        size = min(hint, max(_MIN_GUESS, _HINT_RATIO * len(data)))
    size = min(max(size, 1), max_size)
    while True:
        out = bytearray(size)
        try:
            written = into(data, memoryview(out))
        except cramjam.DecompressionError as exc:
            if _OUTPUT_FULL not in str(exc):
                raise
            del out  # drop the full buffer before allocating the next (or raising)
            if size >= max_size:
                raise DecompressionBombError(
                    f"decompressed size exceeds the cap of {max_size} bytes"
                ) from None
            size = min(size * _GROWTH, max_size)
            continue
        del out[written:]
        return bytes(out)


def _gzip_hint(data: Buffer) -> int | None:
    """ISIZE, the gzip trailer's uncompressed size mod 2**32 (exact for one member < 4 GiB)."""
    if len(data) < 18:
        return None
    size: int = _LE_UINT32.unpack_from(data, len(data) - 4)[0]
    return size + 1  # +1 so an exact fit is told apart from a short guess without a retry


def _zstd_hint(data: Buffer) -> int | None:
    """Frame_Content_Size of the first zstd frame, when the encoder wrote it (RFC 8878 3.1.1.1)."""
    if len(data) < 6 or bytes(data[:4]) != b"\x28\xb5\x2f\xfd":
        return None
    descriptor = data[4]
    fcs_flag = descriptor >> 6
    single_segment = (descriptor >> 5) & 1
    dict_id_size = (0, 1, 2, 4)[descriptor & 3]
    fcs_size = (single_segment, 2, 4, 8)[fcs_flag]
    if fcs_size == 0:
        return None
    pos = 5 + (0 if single_segment else 1) + dict_id_size
    if len(data) < pos + fcs_size:
        return None
    value = int.from_bytes(data[pos : pos + fcs_size], "little")
    return (value + 256 if fcs_size == 2 else value) + 1


def _lz4_hint(data: Buffer) -> int | None:
    """Content Size from the LZ4 frame descriptor, when the encoder set its flag."""
    if len(data) < 15 or bytes(data[:4]) != b"\x04\x22\x4d\x18" or not data[4] & 0x08:
        return None
    size: int = _LE_UINT64.unpack_from(data, 6)[0]
    return size + 1


def _snappy_decode(data: Buffer, max_size: int) -> bytes:
    if bytes(data[: len(XERIAL_MAGIC)]) == XERIAL_MAGIC:
        return _xerial_decode(data, max_size)
    return _raw_snappy(memoryview(data), max_size)


def _raw_snappy(block: memoryview, max_size: int) -> bytes:
    # A raw block declares its exact output size up front: check it before allocating anything.
    size = cramjam.snappy.decompress_raw_len(block)
    if size > max_size:
        raise DecompressionBombError(f"snappy block declares {size} bytes, cap is {max_size}")
    out = bytearray(size)
    written = cramjam.snappy.decompress_raw_into(block, out)
    if written != size:
        raise DecompressionError(f"snappy block declared {size} bytes, produced {written}")
    return bytes(out)


def _xerial_decode(data: Buffer, max_size: int) -> bytes:
    view = memoryview(data)
    if len(view) < _XERIAL_HEADER.size:
        raise DecompressionError("xerial snappy header truncated")
    # First pass: frame the blocks and add up their declared sizes, so the cap is enforced
    # before any output is allocated.
    blocks: list[tuple[memoryview, int]] = []
    total = 0
    pos = _XERIAL_HEADER.size
    while pos < len(view):
        if len(view) - pos < 4:
            raise DecompressionError(f"xerial block length truncated at {pos}")
        (length,) = _BE_INT32.unpack_from(view, pos)
        pos += 4
        if length <= 0 or length > len(view) - pos:
            raise DecompressionError(f"xerial block length {length} invalid at {pos - 4}")
        block = view[pos : pos + length]
        pos += length
        size = cramjam.snappy.decompress_raw_len(block)
        total += size
        if total > max_size:
            raise DecompressionBombError(f"xerial snappy exceeds the cap of {max_size} bytes")
        blocks.append((block, size))
    out = bytearray(total)
    target = memoryview(out)
    at = 0
    for block, size in blocks:
        written = cramjam.snappy.decompress_raw_into(block, target[at : at + size])
        if written != size:
            raise DecompressionError(f"snappy block declared {size} bytes, produced {written}")
        at += size
    return bytes(out)
