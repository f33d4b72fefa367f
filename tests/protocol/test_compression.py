"""Compression: every codec round-trips, both snappy framings decode, bombs and corrupt input
raise only the DecodeError family with memory bounded by the cap.

python-lz4 and zstandard (dev dependencies, also kafka-python's codecs) write the foreign frames.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cramjam
import lz4.frame
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redshank.protocol.compression import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    XERIAL_MAGIC,
    _gzip_hint,
    _lz4_hint,
    _zstd_hint,
    codec_of,
    compress,
    decompress,
)
from redshank.protocol.errors import (
    DecodeError,
    DecompressionBombError,
    DecompressionError,
    UnknownCompressionError,
)
from redshank.protocol.record_batch import Compression

CODECS = [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]
MiB = 1024 * 1024
GiB = 1024 * MiB
# Text-like data that compresses, with a random-looking tail that does not.
SAMPLE = b"".join(b"record %d says hello; " % i for i in range(5000)) + bytes(range(256)) * 40


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip(codec: Compression) -> None:
    packed = compress(codec, SAMPLE)
    assert len(packed) < len(SAMPLE)
    assert decompress(codec, packed) == SAMPLE
    assert decompress(codec, memoryview(bytearray(packed))) == SAMPLE
    assert decompress(codec, compress(codec, b"")) == b""


@pytest.mark.parametrize("codec", CODECS)
def test_exact_cap_is_allowed_one_byte_less_is_a_bomb(codec: Compression) -> None:
    packed = compress(codec, SAMPLE)
    assert decompress(codec, packed, max_size=len(SAMPLE)) == SAMPLE
    with pytest.raises(DecompressionBombError):
        decompress(codec, packed, max_size=len(SAMPLE) - 1)


@pytest.mark.parametrize("codec", CODECS)
def test_output_beyond_the_first_guess_grows_to_fit(codec: Compression) -> None:
    # 4 MiB of zeros in two concatenated streams: no size hint covers it (the gzip trailer
    # names only the last member, lz4 frames carry none, the zstd hint is the first frame's), so
    # the output buffer must grow past the first guess. Pins cramjam's "buffer full" signal too.
    half = compress(codec, bytes(2 * MiB))
    stream = half + half[16:] if codec == Compression.SNAPPY else half + half
    assert decompress(codec, stream) == bytes(4 * MiB)
    assert decompress(codec, stream, max_size=4 * MiB) == bytes(4 * MiB)


def test_none_passes_bytes_through_under_the_cap() -> None:
    assert decompress(Compression.NONE, memoryview(SAMPLE)) == SAMPLE
    assert compress(Compression.NONE, bytearray(b"ab")) == b"ab"
    with pytest.raises(DecompressionBombError):
        decompress(Compression.NONE, b"abc", max_size=2)


def test_snappy_encodes_xerial_framing_in_32k_blocks() -> None:
    packed = compress(Compression.SNAPPY, SAMPLE)
    magic, version, compat = struct.unpack_from(">8sii", packed)
    assert (magic, version, compat) == (XERIAL_MAGIC, 1, 1)
    pos, sizes = 16, []
    while pos < len(packed):
        (length,) = struct.unpack_from(">i", packed, pos)
        block = packed[pos + 4 : pos + 4 + length]
        sizes.append(len(cramjam.snappy.decompress_raw(block)))
        pos += 4 + length
    assert pos == len(packed)
    assert sizes[:-1] == [32 * 1024] * (len(sizes) - 1) and sum(sizes) == len(SAMPLE)


def test_snappy_decodes_the_raw_block_librdkafka_writes() -> None:
    raw = bytes(cramjam.snappy.compress_raw(SAMPLE))
    assert not raw.startswith(XERIAL_MAGIC)
    assert decompress(Compression.SNAPPY, raw) == SAMPLE
    with pytest.raises(DecompressionBombError):
        decompress(Compression.SNAPPY, raw, max_size=len(SAMPLE) - 1)


def test_snappy_decodes_a_hand_built_xerial_stream() -> None:
    # Built here from the format description (not by our encoder), with odd block sizes.
    parts = [XERIAL_MAGIC + struct.pack(">ii", 1, 1)]
    for start in range(0, len(SAMPLE), 10_000):
        block = bytes(cramjam.snappy.compress_raw(SAMPLE[start : start + 10_000]))
        parts.append(struct.pack(">i", len(block)) + block)
    assert decompress(Compression.SNAPPY, b"".join(parts)) == SAMPLE


def test_gzip_reads_stdlib_output_and_multiple_members() -> None:
    member = gzip.compress(SAMPLE)
    assert decompress(Compression.GZIP, member + member) == SAMPLE + SAMPLE


def test_lz4_frames_use_independent_blocks() -> None:
    # Java's Lz4BlockInputStream decompresses each block alone: FLG bit 5 (block independence).
    packed = compress(Compression.LZ4, SAMPLE)
    assert packed[:4] == b"\x04\x22\x4d\x18" and packed[4] & 0x20


def test_lz4_decodes_linked_blocks_checksums_and_declared_sizes() -> None:
    # Frames other writers produce: cramjam's default (linked blocks, content checksum) and
    # python-lz4's with the content size in the descriptor (the hint path).
    assert decompress(Compression.LZ4, bytes(cramjam.lz4.compress(SAMPLE))) == SAMPLE
    sized = lz4.frame.compress(SAMPLE, store_size=True, content_checksum=True)
    assert _lz4_hint(sized) == len(SAMPLE) + 1
    assert decompress(Compression.LZ4, sized) == SAMPLE


def test_zstd_decodes_frames_without_a_content_size() -> None:
    bare = zstandard.ZstdCompressor(write_content_size=False).compress(SAMPLE)
    assert _zstd_hint(bare) is None
    assert decompress(Compression.ZSTD, bare) == SAMPLE


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65791, 65792, 70_000, 5_000_000])
def test_size_hints_read_the_declared_sizes(size: int) -> None:
    # Hints are +1 so an exact fit needs no second pass; 256 and 65792 straddle zstd's 2-byte
    # Frame_Content_Size form (stored minus 256).
    data = bytes(size)
    assert _zstd_hint(compress(Compression.ZSTD, data)) == size + 1
    assert _gzip_hint(compress(Compression.GZIP, data)) == size + 1
    if size:
        assert _lz4_hint(lz4.frame.compress(data, store_size=True)) == size + 1
    assert _lz4_hint(compress(Compression.LZ4, data)) is None  # Java's writer sets no size


def test_unknown_codecs_are_typed_errors() -> None:
    for bits in (5, 6, 7):
        with pytest.raises(UnknownCompressionError):
            codec_of(bits)
        with pytest.raises(UnknownCompressionError):
            decompress(bits, b"data")
    assert codec_of(4) is Compression.ZSTD


def _bomb(codec: Compression, total: int = GiB) -> bytes:
    """`total` zero bytes as ONE valid compressed stream, built without ever holding `total`
    bytes: gzip/lz4/zstd through cramjam's streaming compressors; snappy as one xerial stream of
    repeated 32 KiB blocks (xerial is block-framed by design)."""
    chunk = bytes(MiB)
    if codec == Compression.SNAPPY:
        block = compress(Compression.SNAPPY, bytes(32 * 1024))
        return block[:16] + block[16:] * (total // (32 * 1024))
    compressor: cramjam.gzip.Compressor | cramjam.lz4.Compressor | cramjam.zstd.Compressor
    if codec == Compression.GZIP:
        compressor = cramjam.gzip.Compressor(level=1)
    elif codec == Compression.LZ4:
        compressor = cramjam.lz4.Compressor(level=1, block_linked=False)
    else:
        compressor = cramjam.zstd.Compressor()
    for _ in range(total // MiB):
        compressor.compress(chunk)
    return bytes(compressor.finish())


@pytest.fixture(scope="module")
def bombs() -> dict[Compression, bytes]:
    return {codec: _bomb(codec) for codec in CODECS}


@pytest.mark.parametrize("codec", CODECS)
def test_one_gib_bomb_stops_at_the_default_cap(
    codec: Compression, bombs: dict[Compression, bytes]
) -> None:
    bomb = bombs[codec]
    assert len(bomb) < 64 * MiB  # the bomb is small; what it expands to is not
    tracemalloc.start()
    try:
        with pytest.raises(DecompressionBombError):
            decompress(codec, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Python-side allocations: at most the cap plus the previous (4x smaller) attempt.
    assert peak < 1.5 * DEFAULT_MAX_DECOMPRESSED_SIZE


_RSS_SCRIPT = """
import sys
from redshank.protocol.compression import decompress
from redshank.protocol.errors import DecompressionBombError
from redshank.protocol.record_batch import Compression

def peak_kib():  # VmHWM: this process's peak RSS (ru_maxrss would include the parent's)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

bombs = [(Compression[name.rsplit(".", 1)[1]], open(name, "rb").read()) for name in sys.argv[1:]]
before = peak_kib()
for codec, bomb in bombs:
    try:
        decompress(codec, bomb)
        raise SystemExit(f"{codec.name}: no DecompressionBombError")
    except DecompressionBombError:
        pass
print(before, peak_kib())
"""


def test_bombs_keep_the_whole_process_rss_bounded(
    bombs: dict[Compression, bytes], tmp_path: Path
) -> None:
    # tracemalloc cannot see cramjam's native buffers; the kernel's peak RSS of a fresh process
    # can. Decompressing the four 1 GiB bombs must add about one cap, never a GiB.
    names = []
    for codec, bomb in bombs.items():
        path = tmp_path / f"bomb.{codec.name}"
        path.write_bytes(bomb)
        names.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, *names],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    before_kib, after_kib = map(int, done.stdout.split())
    assert 0 < before_kib <= after_kib
    assert (after_kib - before_kib) * 1024 < 2 * DEFAULT_MAX_DECOMPRESSED_SIZE


@pytest.mark.parametrize("codec", CODECS)
def test_bombs_respect_a_small_cap(codec: Compression, bombs: dict[Compression, bytes]) -> None:
    with pytest.raises(DecompressionBombError):
        decompress(codec, bombs[codec], max_size=MiB)


def test_lying_size_hints_do_not_allocate_the_cap() -> None:
    # A gzip trailer claiming 4 GiB on 40 bytes of input: the first buffer is bounded by the input.
    fake = gzip.compress(b"x")[:-4] + struct.pack("<I", 0xFFFFFFFF)
    tracemalloc.start()
    try:
        with pytest.raises(DecompressionError):
            decompress(Compression.GZIP, fake)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 * MiB


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_payloads_are_decompression_errors(codec: Compression) -> None:
    packed = compress(codec, SAMPLE)
    for case in (b"", packed[:1], packed[: len(packed) // 2], packed[:-1], b"\x00" * 64):
        with pytest.raises(DecompressionError):
            decompress(codec, case)


@pytest.mark.parametrize("codec", CODECS)
def test_corrupt_payloads_raise_nothing_but_decompression_errors(codec: Compression) -> None:
    packed = compress(codec, SAMPLE)
    detected = tried = 0
    for pos in range(0, len(packed), max(1, len(packed) // 1500)):
        tried += 1
        flipped = bytearray(packed)
        flipped[pos] ^= 0xFF
        try:
            decompress(codec, flipped, max_size=2 * len(SAMPLE))
        except DecompressionError:
            detected += 1
    # Snappy and zstd (no content checksum by default) decode some flipped literals into other
    # bytes, which is the codec's business; most flips must still be caught.
    assert detected > tried // 4


def test_xerial_framing_errors_are_decompression_errors() -> None:
    header = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    block = bytes(cramjam.snappy.compress_raw(b"abc" * 100))
    for bad in (
        XERIAL_MAGIC + b"\x00",  # header truncated
        header + b"\x00\x00",  # block length truncated
        header + struct.pack(">i", 0),  # empty block
        header + struct.pack(">i", -5) + block,  # negative block length
        header + struct.pack(">i", len(block) + 1) + block,  # block length past the end
        header + struct.pack(">i", len(block)) + block[:-1] + b"\xff",
    ):
        with pytest.raises(DecompressionError):
            decompress(Compression.SNAPPY, bad)


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(CODECS),
    st.binary(max_size=2000),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
    st.integers(0, 3000),
)
def test_fuzz_mutated_streams_raise_only_decode_errors(
    codec: Compression, payload: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    mutated = _mutate(compress(codec, payload * 3), edits)[: cut or None]
    try:
        out = decompress(codec, mutated, max_size=64 * 1024)
    except DecodeError:
        return
    assert len(out) <= 64 * 1024


@given(st.integers(0, 7), st.binary(max_size=512))
def test_fuzz_random_bytes_raise_only_decode_errors(bits: int, data: bytes) -> None:
    for blob in (data, XERIAL_MAGIC + data):
        try:
            out = decompress(bits, blob, max_size=64 * 1024)
        except DecodeError:
            continue
        assert len(out) <= 64 * 1024
