"""Controller commands: each is one Kafka record batch (key = type and version), round trips,
and malformed bytes are refused with `ControllerDecodeError` only (seeded, bounded fuzz)."""

from __future__ import annotations

import random
import struct
import uuid

import pytest

from redshank.cluster.controller import (
    AllocateProducerIds,
    AlterTopicConfigs,
    BootstrapCluster,
    Command,
    CommandType,
    ControllerDecodeError,
    CreatePartitions,
    CreateTopic,
    DecommissionNode,
    DeleteTopic,
    NetAddress,
    RegisterNode,
    Replica,
    SetPreferredReplica,
    decode_command,
    encode_command,
)
from redshank.cluster.kafka.topic_configs import ConfigOp
from redshank.cluster.kafka.topic_table import CoreId
from redshank.cluster.raft.types import NodeId
from redshank.protocol.errors import EncodeError
from redshank.protocol.record_batch import validate_batch
from redshank.protocol.records import BatchBuilder, iter_records

NODE = RegisterNode(NodeId(3), uuid.UUID(int=42), NetAddress("rp-3.local", 33145),
                    NetAddress("10.1.2.3", 9092), 16)
ASSIGNMENTS = ((Replica(NodeId(1), CoreId(0)), Replica(NodeId(2), CoreId(3))),
               (Replica(NodeId(2), CoreId(1)), Replica(NodeId(1), CoreId(2))))

EXAMPLES: list[Command] = [
    BootstrapCluster(uuid.UUID(int=1), (NODE, RegisterNode(NodeId(1), uuid.UUID(int=2),
                                                           NetAddress("a", 1),
                                                           NetAddress("b", 2), 1))),
    BootstrapCluster(uuid.UUID(int=1), ()),
    NODE,
    DecommissionNode(NodeId(7)),
    CreateTopic("orders", uuid.UUID(int=9), 2, 2,
                (("cleanup.policy", "compact"), ("retention.ms", "-1")), ASSIGNMENTS),
    CreateTopic("é-ü", uuid.UUID(int=9), 0, -1, (), ()),
    DeleteTopic("orders"),
    DeleteTopic("orders", uuid.UUID(int=9)),
    CreatePartitions("orders", 4, ASSIGNMENTS),
    AlterTopicConfigs("orders", ((ConfigOp.SET, "retention.ms", "5"),
                                 (ConfigOp.DELETE, "segment.ms", None),
                                 (ConfigOp.APPEND, "cleanup.policy", "compact"),
                                 (ConfigOp.SUBTRACT, "cleanup.policy", "delete"))),
    AlterTopicConfigs("orders", (), replace=True),
    AllocateProducerIds(NodeId(2)),
    SetPreferredReplica("orders", 1, NodeId(2)),
]


@pytest.mark.parametrize("cmd", EXAMPLES, ids=lambda c: type(c).__name__)
def test_round_trip_as_one_batch_with_one_record(cmd: Command) -> None:
    batch = encode_command(cmd, timestamp_ms=1234)
    header = validate_batch(batch)
    assert header.size == len(batch) and header.record_count == 1
    (record,) = iter_records(batch)
    assert record.timestamp == 1234
    kind, version = struct.unpack(">hh", record.key or b"")
    assert CommandType(kind).name.replace("_", "") == type(cmd).__name__.upper()
    assert version == 0
    assert decode_command(batch) == cmd
    assert decode_command(memoryview(batch)) == cmd


def test_alter_of_builds_set_and_delete_ops() -> None:
    cmd = AlterTopicConfigs.of("t", set=(("a", "1"),), delete=("b",))
    assert cmd.ops == ((ConfigOp.SET, "a", "1"), (ConfigOp.DELETE, "b", None))
    assert not cmd.replace


def test_a_field_that_does_not_fit_is_an_encode_error() -> None:
    with pytest.raises(EncodeError):
        encode_command(DecommissionNode(NodeId(1 << 31)))
    with pytest.raises(EncodeError):
        encode_command(DeleteTopic("x" * 40_000))


def _batch(*records: tuple[bytes | None, bytes | None], control: bool = False) -> bytes:
    builder = BatchBuilder(is_control=control, is_transactional=control)
    for key, value in records:
        builder.append(value, key=key, timestamp=0)
    return builder.build()


def _key(kind: int, version: int = 0) -> bytes:
    return struct.pack(">hh", kind, version)


@pytest.mark.parametrize(("raw", "why"), [
    (b"", "truncated"),
    (encode_command(NODE)[:-1], "bytes for a batch"),
    (encode_command(NODE) + b"\x00", "bytes for a batch"),
    (encode_command(NODE) * 2, "bytes for a batch"),
    (_batch((_key(3), b"\x00\x00\x00\x01"), (_key(3), b"\x00\x00\x00\x01")), "one plain record"),
    (_batch((_key(3), b"\x00\x00\x00\x01"), control=True), "one plain record"),
    (_batch((None, b"\x00\x00\x00\x01")), "4-byte key"),
    (_batch((b"\x00\x03", b"\x00\x00\x00\x01")), "4-byte key"),
    (_batch((_key(3), None)), "4-byte key"),
    (_batch((_key(99), b"")), "unknown command type 99"),
    (_batch((_key(3, 1), b"\x00\x00\x00\x01")), "version 1"),
    (_batch((_key(3), b"\x00\x00\x01")), "truncated"),
    (_batch((_key(3), b"\x00\x00\x00\x01\x00")), "trailing"),
    (_batch((_key(7), b"\x00\x01t\x02\x00\x00\x00\x00")), "boolean"),
    (_batch((_key(7), b"\x00\x01t\x00\x00\x00\x00\x01\x09\x00\x01k\xff\xff")), "config op 9"),
    (_batch((_key(5), b"\x00\x02\xff\xfe\x00")), "UTF-8"),
    (_batch((_key(5), b"\xff\xff\x00")), "null"),
    (_batch((_key(1), bytes(16) + b"\x7f\xff\xff\xff")), "array count"),
])
def test_malformed_is_refused_with_one_error_type(raw: bytes, why: str) -> None:
    with pytest.raises(ControllerDecodeError, match=why):
        decode_command(raw)


def test_a_flipped_byte_fails_the_crc_or_the_header() -> None:
    batch = bytearray(encode_command(EXAMPLES[4]))
    batch[-3] ^= 0x40
    with pytest.raises(ControllerDecodeError, match="CRC"):
        decode_command(bytes(batch))


def test_fuzz_random_mutations_decode_or_raise_the_one_error() -> None:
    """Mutated batches (CRC fixed up, so the payload decoder is reached) and mutated payloads in
    well-formed batches either decode to some command or raise ControllerDecodeError."""
    rng = random.Random(20261206)
    decoded = refused = 0
    for i in range(3000):
        cmd = EXAMPLES[i % len(EXAMPLES)]
        batch = encode_command(cmd)
        (record,) = iter_records(batch)
        payload = bytearray(record.value or b"")
        key = bytearray(record.key or b"")
        for _ in range(rng.randint(1, 4)):
            target = payload if rng.random() < 0.9 or not key else key
            roll = rng.random()
            if roll < 0.4 and target:
                target[rng.randrange(len(target))] = rng.randrange(256)
            elif roll < 0.6 and target:
                del target[rng.randrange(len(target)):]
            elif roll < 0.8:
                target[rng.randint(0, len(target)):rng.randint(0, len(target))] = \
                    rng.randbytes(rng.randint(1, 8))
            else:
                target.extend(rng.randbytes(rng.randint(1, 4)))
        try:
            decode_command(_batch((bytes(key), bytes(payload))))
            decoded += 1
        except ControllerDecodeError:
            refused += 1
    assert decoded > 0 and refused > 1000  # both paths were exercised


def test_fuzz_damaged_batches_raise_the_one_error() -> None:
    """Bytes changed where the CRC or the header's checks see them (from the magic on), then
    cut anywhere: refused, never another exception."""
    rng = random.Random(7)
    valid = encode_command(EXAMPLES[0])
    for _ in range(2000):
        raw = bytearray(valid)
        for at in rng.sample(range(16, len(raw)), rng.randint(1, 6)):
            raw[at] = (raw[at] + rng.randrange(1, 256)) % 256
        with pytest.raises(ControllerDecodeError):
            decode_command(bytes(raw[:rng.randint(0, len(raw))]))
