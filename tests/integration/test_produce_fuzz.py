"""Produce fuzzing against a real broker (issue 12): valid batches of every codec, mutated in
their header fields or their records (bits flipped, bytes set, inserted or deleted, plain records
mutated before compression), the CRC32C recomputed so the broker must judge the content; sent
over raw connections with acks=all and acks=1, bounded in time and count.

Every request gets an answer within a bound, with error 0 at the next offset of its partition or
one of the validator's codes. At the end every partition is read from offset 0 to its high
watermark: the stored batches decode with `iter_records` at contiguous offsets, and confluent-
kafka reads every record. The seed is printed (PRODUCE_FUZZ_SEED=<seed> replays a run)."""

from __future__ import annotations

import os
import random
import struct
import time

import crc32c
import pytest
from broker_proc import BrokerProcess, create_topic
from poison import RawClient, forge, seal
from test_confluent_kafka import consume_assigned

from redshank.protocol.compression import compress, decompress
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import HEADER_SIZE, Compression, iter_batches, parse_header
from redshank.protocol.records import BatchBuilder, iter_records

TOPIC = "produce-fuzz"
PARTITIONS = 3
SECONDS = 20.0
MAX_REQUESTS = 15_000
ANSWER_WITHIN_S = 10.0
REFUSALS = {ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD, ErrorCode.MESSAGE_TOO_LARGE}
# A header lie can make a batch idempotent (producerId >= 0): the sequence checks then answer.
PRODUCER_STATE = {ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.DUPLICATE_SEQUENCE_NUMBER,
                  ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.UNKNOWN_PRODUCER_ID}
INTERESTING = (0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFE, 0xFF)
# (offset, struct format) of the header fields a mutation may rewrite whole (CRC excluded).
FIELDS = ((0, ">q"), (8, ">i"), (12, ">i"), (16, ">b"), (21, ">h"), (23, ">i"), (27, ">q"),
          (35, ">q"), (43, ">q"), (51, ">h"), (53, ">i"), (57, ">i"))


def _good(rng: random.Random) -> tuple[bytes, Compression, int]:
    codec = rng.choice(list(Compression))
    n = rng.randint(1, 25)
    builder = BatchBuilder(compression=codec)
    for i in range(n):
        size = rng.choice((0, 1, 10, 100, 700))
        value = None if rng.random() < 0.1 else (b"z" * size if rng.random() < 0.5
                                                 else rng.randbytes(size))
        key = None if rng.random() < 0.5 else rng.randbytes(rng.randint(0, 8))
        headers = [(f"h{j}", rng.randbytes(3)) for j in range(rng.choice((0, 0, 1, 2)))]
        builder.append(value, key=key, headers=headers, timestamp=1_700_000_000_000 + i)
    return builder.build(), codec, n


def _mutate_bytes(rng: random.Random, buf: bytearray, lo: int) -> None:
    """One byte-level mutation at or after `lo`."""
    pos = rng.randrange(lo, len(buf))
    op = rng.random()
    if op < 0.4:
        buf[pos] ^= 1 << rng.randrange(8)
    elif op < 0.8:
        buf[pos] = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(256)
    elif op < 0.9:
        buf.insert(pos, rng.choice(INTERESTING))
    elif len(buf) > lo + 1:
        del buf[pos]


def _field_lie(rng: random.Random, buf: bytearray, n: int) -> None:
    at, fmt = rng.choice(FIELDS)
    size = struct.calcsize(fmt)
    bits = size * 8
    value = rng.choice((0, -1, 1, n, n - 2, n + 1, 2 * n, -(2 ** (bits - 1)),
                        2 ** (bits - 1) - 1, rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))))
    struct.pack_into(fmt, buf, at, value)


def _mutant(rng: random.Random) -> tuple[bytes, str]:
    """A CRC-valid batch, possibly lying, and what was done to it."""
    good, codec, n = _good(rng)
    roll = rng.random()
    if roll < 0.2:
        return good, "none"
    buf = bytearray(good)
    if roll < 0.45:
        for _ in range(rng.randint(1, 2)):
            if rng.random() < 0.6:
                _field_lie(rng, buf, n)
            else:
                _mutate_bytes(rng, buf, 0)
                del buf[len(good):]  # header bytes only: keep the size
                buf.extend(b"\x00" * (len(good) - len(buf)))
        kind = "header"
    elif roll < 0.75 or codec == Compression.NONE:
        for _ in range(rng.randint(1, 3)):
            _mutate_bytes(rng, buf, HEADER_SIZE)
        struct.pack_into(">i", buf, 8, len(buf) - 12)  # batchLength follows the new size
        kind = "records"
    else:
        # Mutate the plain records, then compress them: the walk sees the lie after decoding.
        plain = bytearray(decompress(codec, good[HEADER_SIZE:]))
        for _ in range(rng.randint(1, 3)):
            _mutate_bytes(rng, plain, 0)
        header = parse_header(good)
        return forge(compress(codec, bytes(plain)), count=header.record_count,
                     last_offset_delta=header.last_offset_delta, compression=codec), "plain"
    if rng.random() < 0.05:
        return bytes(buf), f"{kind}+stale-crc"  # CRC left wrong: CORRUPT_MESSAGE expected
    return seal(buf), kind


def _crc_is_stale(buf: bytes) -> bool:
    """A well-framed batch (magic 2, batchLength true) whose CRC32C does not hold; a stale-CRC
    mutation of a field outside the CRC (baseOffset, partitionLeaderEpoch) leaves it valid."""
    length, _epoch, magic, crc = struct.unpack_from(">iibI", buf, 8)
    return magic == 2 and length == len(buf) - 12 and crc32c.crc32c(buf[21:]) != crc


def _read_stored(raw: RawClient, partition: int, high: int, seed: int) -> int:
    """Walk the partition's stored batches from 0 with iter_records; the records seen."""
    # The last answers may be acks=1: answered once appended, visible once flushed (at most a
    # flush round later). Wait, bounded, for the high watermark to cover every answered offset.
    deadline = time.monotonic() + ANSWER_WITHIN_S
    while (hw := raw.fetch(TOPIC, partition, 0).high_watermark) < high:
        assert time.monotonic() < deadline, (seed, partition, hw, high)
        time.sleep(0.01)
    offset = 0
    while offset < high:
        data = raw.fetch(TOPIC, partition, offset)
        assert data.error_code == 0, (seed, partition, offset, data.error_code)
        assert data.high_watermark == high, (seed, partition)
        records = bytes(data.records or b"")
        assert records, f"seed {seed}: partition {partition} stuck at offset {offset}"
        complete = 0
        try:
            for pos, header in iter_batches(records):
                complete = pos + header.size
        except Exception:
            pass
        assert complete, f"seed {seed}: partition {partition} offset {offset}: no whole batch"
        for pos, header in iter_batches(records[:complete]):
            if header.last_offset < offset:
                continue
            assert header.base_offset == offset, (seed, partition, header.base_offset, offset)
            got = [r.offset for r in iter_records(records, pos)]
            assert got == list(range(offset, offset + header.record_count)), (seed, partition)
            offset += header.record_count
    assert offset == high, (seed, partition, offset, high)
    return offset


def _consume_all(bootstrap: str, highs: dict[int, int], seed: int) -> None:
    """confluent-kafka reads every partition from 0 to its high watermark, offsets in order."""
    got = consume_assigned(bootstrap, TOPIC, PARTITIONS, sum(highs.values()), timeout=60)
    for p, high in highs.items():
        offsets = [offset for offset, _key, _value in got.get(p, [])]
        assert offsets == list(range(high)), (
            f"seed {seed}: partition {p}: confluent-kafka read {len(offsets)} of {high}")


@pytest.mark.timeout(150)
def test_fuzzed_produce_never_breaks_a_partition(broker: BrokerProcess) -> None:
    seed = int(os.environ.get("PRODUCE_FUZZ_SEED") or random.randrange(2**32))
    print(f"produce fuzz seed {seed} (PRODUCE_FUZZ_SEED={seed} replays it)")
    rng = random.Random(seed)
    create_topic(broker.bootstrap, TOPIC, PARTITIONS)
    clients = {acks: RawClient(broker.bootstrap, timeout=ANSWER_WITHIN_S) for acks in (-1, 1)}
    next_offset = dict.fromkeys(range(PARTITIONS), 0)
    outcomes: dict[str, int] = {}
    try:
        deadline = time.monotonic() + SECONDS
        sent = 0
        while sent < MAX_REQUESTS and time.monotonic() < deadline:
            records, kind = _mutant(rng)
            partition = rng.randrange(PARTITIONS)
            acks = rng.choice((-1, 1))
            sent += 1
            where = f"seed {seed}, request {sent} ({kind}, acks={acks})"
            try:  # no hang: the socket timeout (ANSWER_WITHIN_S) bounds every answer
                answer = clients[acks].produce(TOPIC, partition, records, acks=acks)
            except TimeoutError:
                raise AssertionError(f"{where}: no answer within {ANSWER_WITHIN_S} s") from None
            assert answer is not None
            idempotent = struct.unpack_from(">q", records, 43)[0] >= 0  # producerId
            if (answer.error_code == 0 and idempotent
                    and answer.base_offset < next_offset[partition]):
                # A lie in producerId/sequence made it a duplicate of an earlier idempotent
                # batch: Kafka answers with the original offset and stores nothing.
                outcomes["duplicate"] = outcomes.get("duplicate", 0) + 1
            elif answer.error_code == 0:
                assert answer.base_offset == next_offset[partition], where
                next_offset[partition] += parse_header(records).record_count
                outcomes["accepted"] = outcomes.get("accepted", 0) + 1
            else:
                allowed = REFUSALS | (PRODUCER_STATE if idempotent else set())
                assert answer.error_code in allowed, (where, answer.error_code,
                                                      answer.error_message)
                assert answer.error_message, where
                assert answer.base_offset == -1, where
                name = ErrorCode(answer.error_code).name
                outcomes[name] = outcomes.get(name, 0) + 1
            if kind.endswith("stale-crc") and _crc_is_stale(records):
                assert answer.error_code == ErrorCode.CORRUPT_MESSAGE, where
        print(f"{sent} requests: {outcomes}; offsets {next_offset}")
        assert outcomes.get("accepted", 0) > sent // 10, (seed, outcomes)
        assert outcomes.get("INVALID_RECORD", 0) > sent // 10, (seed, outcomes)
        for partition, high in next_offset.items():
            _read_stored(clients[-1], partition, high, seed)
    finally:
        for client in clients.values():
            client.close()
    _consume_all(broker.bootstrap, next_offset, seed)
