"""Benchmark record reading and compression (not wired into the CLI table; run as a module).

    PYTHONPATH=$PWD/.typecheck python3 -m redshank.tools.bench.records [--quick]

Measures `iter_records` over one uncompressed batch of 100 x 1 KiB records (baseline in the same
run: kafka-python's reader on the same bytes, when installed), and per codec the compress and
capped `decompress` throughput of that batch's records section (baseline: cramjam's unbounded
one-shot decompress, so the ratio is the cost of the cap; for snappy, one raw block). Prints one
JSON object, last line. Figures are noisy on a shared 2-core machine: compare the ratios.
`produce_check`: the produce path's batch check (`check_records`, records walked) per record of
a 16-record batch, uncompressed and compressed, next to the header+CRC check alone.
"""

from __future__ import annotations

import argparse
import json
import random

import cramjam

from redshank.cluster.kafka.handlers.produce import check_records
from redshank.protocol.compression import compress, decompress
from redshank.protocol.record_batch import HEADER_SIZE, Compression, validate_batch
from redshank.protocol.records import BatchBuilder, iter_records
from redshank.tools.bench._timing import best_seconds

_WORDS = [
    b"user", b"order", b"id", b"amount", b"currency", b"EUR", b"status", b"shipped", b"true",
    b"false", b"timestamp", b"sku", b"warehouse", b"north", b"south", b"qty", b"price",
]  # fmt: skip


def _value(rng: random.Random, size: int) -> bytes:
    """JSON-ish text: repetitive field names, random numbers (compresses roughly 3-5x)."""
    out = bytearray(b"{")
    while len(out) < size:
        out += b'"%s":%d,' % (rng.choice(_WORDS), rng.randrange(10**9))
    return bytes(out[: size - 1]) + b"}"


def _batch(
    count: int = 100, size: int = 1024, compression: Compression = Compression.NONE
) -> bytes:
    rng = random.Random(7)
    builder = BatchBuilder(compression=compression)
    for i in range(count):
        builder.append(_value(rng, size), key=b"key-%d" % i, timestamp=1_700_000_000_000 + i)
    return builder.build()


def _produce_check(number: int, repeat: int) -> dict[str, object]:
    """What the produce path's batch check costs per record (`check_records`: header, CRC and
    the records walked, compressed ones decompressed first), against the header and CRC check
    alone (what produce did before batches were walked), measured in the same run."""
    out: dict[str, object] = {}
    for name, codec in (("none", Compression.NONE), ("lz4", Compression.LZ4),
                        ("zstd", Compression.ZSTD)):
        batch = memoryview(bytearray(_batch(16, compression=codec)))  # ~a linger.ms batch
        full = best_seconds(lambda b=batch: check_records(b, 1 << 30),  # type: ignore[misc]
                            number=number * 5, repeat=repeat)
        base = best_seconds(lambda b=batch: validate_batch(b),  # type: ignore[misc]
                            number=number * 5, repeat=repeat)
        out[name] = {"check_records_us_per_record": round(full / 16 * 1e6, 3),
                     "baseline_header_crc_us_per_record": round(base / 16 * 1e6, 3),
                     "walk_us_per_record": round((full - base) / 16 * 1e6, 3)}
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="redshank bench records", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (for tests)")
    args = parser.parse_args(argv)
    repeat, number = (3, 20) if args.quick else (7, 100)
    batch = _batch()
    result: dict[str, object] = {"batch_bytes": len(batch), "records": 100, "record_bytes": 1024}

    read = best_seconds(lambda: sum(1 for _ in iter_records(batch)), number=number, repeat=repeat)
    result["iter_records_us_per_batch"] = round(read * 1e6, 1)
    result["iter_records_records_per_s"] = round(100 / read)
    result["iter_records_MB_per_s"] = round(len(batch) / read / 1e6, 1)
    validate = best_seconds(lambda: validate_batch(batch), number=number, repeat=repeat)
    result["validate_batch_us"] = round(validate * 1e6, 2)
    result["produce_check"] = _produce_check(number, repeat)
    try:
        from kafka.record.default_records import DefaultRecordBatch

        theirs = best_seconds(
            lambda: sum(1 for _ in DefaultRecordBatch(batch)), number=number, repeat=repeat
        )
        result["baseline_kafka_python_us_per_batch"] = round(theirs * 1e6, 1)
        result["iter_records_speedup_vs_kafka_python"] = round(theirs / read, 2)
    except ImportError:
        result["baseline_kafka_python_us_per_batch"] = None

    section = batch[HEADER_SIZE:]
    unbounded = {
        Compression.GZIP: cramjam.gzip.decompress,
        Compression.SNAPPY: None,  # xerial framing has no one-shot cramjam equivalent (below)
        Compression.LZ4: cramjam.lz4.decompress,
        Compression.ZSTD: cramjam.zstd.decompress,
    }
    codecs: dict[str, dict[str, float | None]] = {}
    for codec, plain in unbounded.items():
        packed = compress(codec, section)
        enc = best_seconds(
            lambda c=codec: compress(c, section),  # type: ignore[misc]
            number=number,
            repeat=repeat,
        )
        dec = best_seconds(
            lambda c=codec, p=packed: decompress(c, p),  # type: ignore[misc]
            number=number,
            repeat=repeat,
        )
        figures: dict[str, float | None] = {
            "ratio": round(len(section) / len(packed), 2),
            "compress_MB_per_s": round(len(section) / enc / 1e6, 1),
            "decompress_MB_per_s": round(len(section) / dec / 1e6, 1),
        }
        if plain is None:  # snappy: time one unbounded raw block of the same bytes instead
            plain = cramjam.snappy.decompress_raw
            packed = bytes(cramjam.snappy.compress_raw(section))
        base = best_seconds(
            lambda f=plain, p=packed: f(p),  # type: ignore[misc]
            number=number,
            repeat=repeat,
        )
        figures["baseline_unbounded_MB_per_s"] = round(len(section) / base / 1e6, 1)
        codecs[codec.name.lower()] = figures
        compressed_batch = _batch(compression=codec)
        read_c = best_seconds(
            lambda b=compressed_batch: sum(1 for _ in iter_records(b)),  # type: ignore[misc]
            number=number,
            repeat=repeat,
        )
        figures["iter_records_us_per_batch"] = round(read_c * 1e6, 1)
    result["codecs"] = codecs
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
