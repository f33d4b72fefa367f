"""cluster/raft/wire: every Raft message and the node heartbeat round-trip byte for byte, DATA
batches cross without a copy, and any malformed input raises `RaftWireError` and nothing else."""

from __future__ import annotations

import random
import struct

import pytest

from redshank.cluster.raft import (
    Config,
    Entry,
    EntryKind,
    GroupId,
    Index,
    Message,
    MessageType,
    NodeHeartbeat,
    NodeId,
    Term,
)
from redshank.cluster.raft.batches import batch_of
from redshank.cluster.raft.sim import Simulator, run_seed
from redshank.cluster.raft.sim.host import GroupMessage, Packet
from redshank.cluster.raft.wire import (
    HEARTBEAT_BEAT_SIZE,
    WIRE_VERSION,
    RaftWireError,
    decode_message,
    decode_node_heartbeat,
    encode_message,
    encode_node_heartbeat,
)
from redshank.protocol.errors import DecodeError, EncodeError
from redshank.protocol.record_batch import Compression
from redshank.protocol.records import BatchBuilder

MT = MessageType
U32 = 2**32 - 1
U64 = 2**64 - 1
HEAD = 55  # the fixed part of a message (module docstring)


def ids(*xs: int) -> frozenset[NodeId]:
    return frozenset(NodeId(x) for x in xs)


def data(term: int, index: int, batch: bytes | bytearray | memoryview) -> Entry:
    return Entry(Term(term), Index(index), EntryKind.DATA, batch)


def conf(term: int, index: int, config: Config) -> Entry:
    return Entry(Term(term), Index(index), EntryKind.CONFIG, b"", config)


def noop(term: int, index: int) -> Entry:
    return Entry(Term(term), Index(index), EntryKind.NOOP)


def msg(kind: MessageType, **kw: object) -> Message:
    return Message(kind, NodeId(1), NodeId(2), Term(5), **kw)  # type: ignore[arg-type]


def wire(group: int, m: Message) -> bytes:
    return b"".join(encode_message(GroupId(group), m))


def roundtrip(group: int, m: Message) -> Message:
    raw = wire(group, m)
    g, out = decode_message(raw)
    assert g == group
    assert out == m
    assert out.describe() == m.describe()
    assert wire(group, out) == raw  # canonical: decoding then encoding gives the same bytes
    return out


BATCH = batch_of([b"alpha", b"beta", b"gamma"])
JOINT = Config(ids(1, 2, 4), outgoing=ids(1, 2, 3), learners=ids(5, 6))

HAND_PICKED = [
    msg(MT.APPEND, index=Index(9), log_term=Term(4), commit=Index(8),
        entries=(data(5, 10, BATCH), conf(5, 11, JOINT), noop(5, 12), data(5, 13, b""))),
    msg(MT.APPEND, index=Index(0), log_term=Term(0)),  # a probe: no entries
    msg(MT.APPEND_RESPONSE, index=Index(13)),
    msg(MT.APPEND_RESPONSE, index=Index(7), reject=True, commit=Index(3), context=77),
    msg(MT.VOTE, index=Index(13), log_term=Term(5)),
    msg(MT.VOTE, index=Index(13), log_term=Term(5), transfer=True),
    msg(MT.VOTE_RESPONSE),
    msg(MT.VOTE_RESPONSE, reject=True),
    msg(MT.PREVOTE, index=Index(2), log_term=Term(1)),
    msg(MT.PREVOTE_RESPONSE, reject=True),
    msg(MT.HEARTBEAT, commit=Index(12), context=3),
    msg(MT.HEARTBEAT_RESPONSE, context=3),
    msg(MT.TIMEOUT_NOW),
    Message(MT.APPEND, NodeId(U32), NodeId(U32), Term(U32), Index(U64), Term(U32),
            (data(U32, U64, BATCH), conf(0, 0, Config(ids(U32))), noop(U32, U64)),
            Index(U64), True, True, U64),
]


@pytest.mark.parametrize("m", HAND_PICKED, ids=lambda m: m.type.name)
def test_hand_picked_messages_round_trip(m: Message) -> None:
    roundtrip(42, m)


def test_every_message_type_is_covered() -> None:
    assert {m.type for m in HAND_PICKED} == set(MessageType)


def test_layout_sizes() -> None:
    raw = wire(1, msg(MT.HEARTBEAT))
    assert len(raw) == HEAD
    assert raw[0] == WIRE_VERSION
    assert raw[9] == MT.HEARTBEAT
    assert len(wire(1, msg(MT.APPEND, entries=(noop(1, 1),)))) == HEAD + 13
    assert len(wire(1, msg(MT.APPEND, entries=(data(1, 1, BATCH),)))) == HEAD + 17 + len(BATCH)
    assert len(wire(1, msg(MT.APPEND, entries=(conf(1, 1, JOINT),)))) == HEAD + 19 + 8 * 4


# ---- zero copy ------------------------------------------------------------------------------

def test_encode_hands_the_batch_over_without_a_copy() -> None:
    shared = bytearray(BATCH)
    view = memoryview(BATCH)
    m = msg(MT.APPEND, entries=(data(5, 1, BATCH), noop(5, 2), data(5, 3, shared),
                                data(5, 4, view)))
    parts = encode_message(GroupId(1), m)
    assert [len(p) for p in parts] == [HEAD + 17, len(BATCH), 13 + 17, len(BATCH), 17,
                                       len(BATCH)]
    assert parts[1] is BATCH
    assert isinstance(parts[3], memoryview) and parts[3].obj is shared
    assert isinstance(parts[5], memoryview) and parts[5].obj is BATCH


def test_decoded_batch_is_a_view_of_the_input() -> None:
    builder = BatchBuilder(base_offset=100, partition_leader_epoch=5)
    for i in range(7):
        builder.append(b"v%d" % i, timestamp=i)
    batch = builder.build()
    entry = data(5, 10, batch)
    buf = bytearray(wire(3, msg(MT.APPEND, entries=(entry,))))
    _, out = decode_message(memoryview(buf))
    got = out.entries[0].batch
    assert isinstance(got, memoryview)
    assert got.obj is buf
    assert got == batch
    assert out.entries[0].span() == entry.span() == 7
    buf[-1] ^= 0xFF  # the input changes, so does the batch: it is the same memory
    assert got[-1] == batch[-1] ^ 0xFF
    # bytes in: the slice views the bytes object itself
    raw = wire(3, msg(MT.APPEND, entries=(entry,)))
    _, out = decode_message(raw)
    got = out.entries[0].batch
    assert isinstance(got, memoryview) and got.obj is raw


def test_decode_reads_a_message_inside_a_larger_frame() -> None:
    m = msg(MT.APPEND, entries=(data(5, 1, BATCH), conf(5, 2, JOINT)))
    frame = b"head" + wire(9, m) + b"tail"
    group, out = decode_message(memoryview(frame)[4:-4])
    assert (group, out) == (9, m)
    got = out.entries[0].batch
    assert isinstance(got, memoryview) and got.obj is frame


# ---- random round trips ---------------------------------------------------------------------

def make_batches(rng: random.Random) -> list[bytes]:
    out = [BATCH]
    for _ in range(12):
        builder = BatchBuilder(base_offset=rng.randrange(1000),
                               partition_leader_epoch=rng.randrange(9),
                               compression=rng.choice([Compression.NONE, Compression.GZIP]))
        for _ in range(rng.randint(1, 6)):
            builder.append(rng.randbytes(rng.randint(0, 40)), timestamp=rng.randrange(10**12))
        out.append(builder.build())
    return out


def some(rng: random.Random, top: int) -> int:
    return rng.choice((0, 1, top, rng.randrange(100), rng.randrange(top + 1)))


def node_set(rng: random.Random, n: int) -> frozenset[NodeId]:
    return frozenset(NodeId(some(rng, U32)) for _ in range(n))


def random_entry(rng: random.Random, batches: list[bytes]) -> Entry:
    term, index = some(rng, U32), some(rng, U64)
    kind = rng.choice(list(EntryKind))
    if kind == EntryKind.DATA:
        return data(term, index, rng.choice(batches) if rng.random() < 0.9 else b"")
    if kind == EntryKind.CONFIG:
        c = Config(node_set(rng, rng.randint(0, 5)), node_set(rng, rng.choice((0, 0, 3))),
                   node_set(rng, rng.randint(0, 3)))
        return conf(term, index, c)
    return noop(term, index)


def random_message(rng: random.Random, batches: list[bytes]) -> tuple[GroupId, Message]:
    kind = rng.choice(list(MessageType))
    n = rng.choice((0, 0, 1, rng.randint(1, 6))) if kind == MT.APPEND else 0
    return GroupId(some(rng, U64)), Message(
        kind, NodeId(some(rng, U32)), NodeId(some(rng, U32)), Term(some(rng, U32)),
        Index(some(rng, U64)), Term(some(rng, U32)),
        tuple(random_entry(rng, batches) for _ in range(n)), Index(some(rng, U64)),
        rng.random() < 0.3, rng.random() < 0.2, some(rng, U64))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_messages_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    batches = make_batches(rng)
    for _ in range(1000):
        group, m = random_message(rng, batches)
        roundtrip(group, m)


# ---- node heartbeats ------------------------------------------------------------------------

def beat(group: int, kind: MessageType = MT.HEARTBEAT, **kw: object) -> tuple[GroupId, Message]:
    return GroupId(group), Message(kind, NodeId(1), NodeId(2), Term(3), **kw)  # type: ignore[arg-type]


def hb_roundtrip(hb: NodeHeartbeat) -> bytes:
    raw = encode_node_heartbeat(hb)
    out = decode_node_heartbeat(raw)
    assert out == hb
    assert encode_node_heartbeat(out) == raw
    return raw


def test_node_heartbeat_round_trip_and_size() -> None:
    hb = NodeHeartbeat(NodeId(1), NodeId(2), (
        beat(0, commit=Index(10)),
        beat(7, MT.HEARTBEAT_RESPONSE, context=99),
        beat(8, MT.HEARTBEAT_RESPONSE, reject=True, transfer=True),
        (GroupId(U64), Message(MT.HEARTBEAT, NodeId(1), NodeId(2), Term(U32), commit=Index(U64),
                               context=U64)),
    ))
    raw = hb_roundtrip(hb)
    assert HEARTBEAT_BEAT_SIZE == 29
    assert len(raw) == 13 + 4 * HEARTBEAT_BEAT_SIZE
    assert hb_roundtrip(NodeHeartbeat(NodeId(3), NodeId(4), ())) == bytes([1, 3, 0, 0, 0, 4, 0,
                                                                          0, 0, 0, 0, 0, 0])


def test_random_node_heartbeats_round_trip() -> None:
    rng = random.Random(7)
    for _ in range(50):
        src, dst = NodeId(some(rng, U32)), NodeId(some(rng, U32))
        beats = tuple(
            (GroupId(some(rng, U64)),
             Message(rng.choice((MT.HEARTBEAT, MT.HEARTBEAT_RESPONSE)), src, dst,
                     Term(some(rng, U32)), commit=Index(some(rng, U64)),
                     reject=rng.random() < 0.2, transfer=rng.random() < 0.1,
                     context=some(rng, U64)))
            for _ in range(rng.randint(0, 300)))
        raw = hb_roundtrip(NodeHeartbeat(src, dst, beats))
        assert len(raw) == 13 + HEARTBEAT_BEAT_SIZE * len(beats)


@pytest.mark.parametrize("bad", [
    beat(1, MT.APPEND),
    beat(1, MT.VOTE),
    beat(1, index=Index(3)),
    beat(1, log_term=Term(2)),
    beat(1, entries=(noop(3, 1),)),
    (GroupId(1), Message(MT.HEARTBEAT, NodeId(9), NodeId(2), Term(3))),
    (GroupId(1), Message(MT.HEARTBEAT, NodeId(1), NodeId(9), Term(3))),
    beat(-1),
    beat(1, commit=Index(-1)),
    beat(1, context=U64 + 1),
])
def test_node_heartbeat_refuses_what_it_cannot_carry(bad: tuple[GroupId, Message]) -> None:
    with pytest.raises(EncodeError):
        encode_node_heartbeat(NodeHeartbeat(NodeId(1), NodeId(2), (beat(0), bad)))


# ---- encoding refuses ------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    msg(MT.APPEND, index=Index(-1)),
    msg(MT.APPEND, commit=Index(U64 + 1)),
    Message(MT.VOTE, NodeId(1), NodeId(2), Term(U32 + 1)),
    Message(MT.VOTE, NodeId(-1), NodeId(2), Term(1)),
    msg(MT.VOTE, context=-1),
    msg(MT.APPEND, entries=(Entry(Term(1), Index(1), EntryKind.CONFIG),)),
    msg(MT.APPEND, entries=(Entry(Term(1), Index(1), EntryKind.NOOP, BATCH),)),
    msg(MT.APPEND, entries=(Entry(Term(1), Index(1), EntryKind.DATA, BATCH, JOINT),)),
    msg(MT.APPEND, entries=(conf(1, 1, Config(ids(1, -2))),)),
    msg(MT.APPEND, entries=(data(-1, 1, BATCH),)),
])
def test_encode_refuses_what_it_cannot_carry(bad: Message) -> None:
    with pytest.raises(EncodeError):
        encode_message(GroupId(1), bad)


def test_encode_refuses_a_group_out_of_range() -> None:
    for group in (-1, U64 + 1):
        with pytest.raises(EncodeError):
            encode_message(GroupId(group), msg(MT.VOTE))


# ---- malformed input ------------------------------------------------------------------------

def patched(raw: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(raw)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


APPEND = wire(1, HAND_PICKED[0])  # entries: DATA at 55, CONFIG, NOOP, empty DATA
DATA_AT = HEAD
BATCH_AT = HEAD + 17
CONFIG_AT = BATCH_AT + len(BATCH)
SINGLE_CONFIG = wire(1, msg(MT.APPEND, entries=(conf(1, 1, JOINT),)))


@pytest.mark.parametrize(("raw", "match"), [
    (b"", "no bytes"),
    (b"\x00" + APPEND[1:], "unknown version 0"),
    (b"\x02" + APPEND[1:], "unknown version 2"),
    (b"\xff", "unknown version 255"),
    (b"\x01", "truncated"),
    (patched(APPEND, 9, "<B", 0), "unknown raft message type 0"),
    (patched(APPEND, 9, "<B", 10), "unknown raft message type 10"),
    (patched(APPEND, 10, "<B", 4), "flags"),
    (patched(APPEND, 51, "<I", U32), "claims 4294967295 entries"),
    (patched(APPEND, 51, "<I", 5), "truncated"),
    (patched(APPEND, 51, "<I", 3), "trailing"),
    (APPEND + b"\x00", "trailing"),
    (patched(APPEND, DATA_AT, "<B", 3), "unknown kind 3"),
    (patched(APPEND, DATA_AT + 13, "<I", U32), "batch of 4294967295 bytes"),
    (patched(APPEND, DATA_AT + 13, "<I", 60), "header truncated"),
    (patched(APPEND, BATCH_AT + 16, "<b", 1), "magic 1"),
    (patched(APPEND, BATCH_AT + 8, ">i", 10), "below header size"),
    (patched(APPEND, BATCH_AT + 8, ">i", len(BATCH) - 11), "record batch of"),
    (patched(SINGLE_CONFIG, HEAD + 13, "<H", 0xFFFF), "configuration of"),
    (patched(SINGLE_CONFIG, HEAD + 19, "<I", 2), "not increasing"),  # voters 2,2,4
    (patched(SINGLE_CONFIG, HEAD + 17, "<H", 0), "trailing"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_malformed_messages_raise_raft_wire_error(raw: bytes, match: str) -> None:
    with pytest.raises(RaftWireError, match=match) as info:
        decode_message(raw)
    assert isinstance(info.value, DecodeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(("raw", "match"), [
    (b"", "no bytes"),
    (b"\x02" + bytes(12), "unknown version 2"),
    (b"\x01" + bytes(11), "truncated"),
    (bytes([1, 1, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]), "claims 4294967295 groups"),
    (bytes([1, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]) + bytes(28), "claims 1 groups in 28"),
    (bytes([1, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]), "claims 0 groups in 1"),
    (bytes([1, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]) + bytes(8) + b"\x08" + bytes(20),
     "unknown flags"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_malformed_heartbeats_raise_raft_wire_error(raw: bytes, match: str) -> None:
    with pytest.raises(RaftWireError, match=match):
        decode_node_heartbeat(raw)


def samples() -> list[bytes]:
    rng = random.Random(11)
    batches = make_batches(rng)
    out = [APPEND, SINGLE_CONFIG, wire(2, HAND_PICKED[3]), wire(2, HAND_PICKED[-1])]
    while len(out) < 12:
        group, m = random_message(rng, batches)
        if m.entries:
            out.append(wire(group, m))
    return out


def test_every_truncation_raises_raft_wire_error() -> None:
    hb = encode_node_heartbeat(NodeHeartbeat(NodeId(1), NodeId(2), (beat(1), beat(2))))
    for raw in samples():
        for n in range(len(raw)):
            with pytest.raises(RaftWireError):
                decode_message(raw[:n])
    for n in range(len(hb)):
        with pytest.raises(RaftWireError):
            decode_node_heartbeat(hb[:n])


def test_byte_flips_never_raise_anything_else() -> None:
    """Bounded fuzz: flip 1-3 bytes of a valid encoding; decoding either fails with
    RaftWireError or succeeds, and then re-encoding gives the flipped bytes back (canonical)."""
    rng = random.Random(2024)
    raws = samples()
    hb = encode_node_heartbeat(NodeHeartbeat(NodeId(1), NodeId(2), tuple(
        beat(g, rng.choice((MT.HEARTBEAT, MT.HEARTBEAT_RESPONSE)), commit=Index(g))
        for g in range(20))))
    decoded = 0
    for case in range(4000):
        heartbeat = case % 4 == 0
        buf = bytearray(hb if heartbeat else rng.choice(raws))
        for _ in range(rng.randint(1, 3)):
            # Mostly the head (where the structure is), sometimes anywhere.
            at = rng.randrange(min(len(buf), 80) if rng.random() < 0.7 else len(buf))
            buf[at] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
        raw = bytes(buf)
        try:
            if heartbeat:
                assert encode_node_heartbeat(decode_node_heartbeat(raw)) == raw
            else:
                group, m = decode_message(raw)
                assert wire(group, m) == raw
            decoded += 1
        except RaftWireError:
            pass
    assert 0 < decoded < 4000


def test_random_garbage_never_raises_anything_else() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        raw = bytes([1]) + rng.randbytes(rng.randint(0, 120))
        for decode in (decode_message, decode_node_heartbeat):
            try:
                decode(raw)
            except RaftWireError:
                pass


# ---- the simulator over the wire ------------------------------------------------------------

class WireSimulator(Simulator):
    """Every packet the simulated nodes exchange crosses the codec (and is checked equal)."""

    def _send(self, packet: Packet) -> None:
        if isinstance(packet, GroupMessage):
            group, m = decode_message(b"".join(encode_message(packet.group, packet.msg)))
            assert (group, m) == (packet.group, packet.msg)
            packet = GroupMessage(group, m)
        else:
            hb = decode_node_heartbeat(encode_node_heartbeat(packet))
            assert hb == packet
            packet = hb
        super()._send(packet)


@pytest.mark.parametrize("seed", [0, 1, 3, 4])
def test_simulated_cluster_runs_the_same_over_the_wire(seed: int) -> None:
    """Decoded messages (DATA batches as views of the received bytes) drive the cores exactly
    as the originals: the same event trace, no violations."""
    direct, wired = run_seed(seed), WireSimulator(seed).run()
    assert wired.violations == direct.violations == []
    assert wired.trace_hash == direct.trace_hash
