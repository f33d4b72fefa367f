"""The byte encoding of the Raft messages that cross nodes: one group's `Message`, and the
node-level heartbeat that carries many groups' heartbeats (`NodeHeartbeat`).

Concern: bytes <-> `Message` / `NodeHeartbeat`, lossless, versioned, and safe against any input.
Must not know: the transport (framing, method ids, connections), version negotiation, the log,
the core's rules. All integers are little-endian and unsigned (ids, terms, indexes and contexts
are never negative; a negative or too wide value is an `EncodeError` on the way out).

    message (v1)  version u8 = 1 | group u64 | type u8 | flags u8 | src u32 | dst u32
                  | term u32 | index u64 | log_term u32 | commit u64 | context u64
                  | entry count u32 | entries                               (55 bytes + entries)
    flags         bit 0 reject, bit 1 transfer; the other bits must be 0
    entry         kind u8 | term u32 | index u64 | body                     (13 bytes + body)
      DATA   (0)  body = batch length u32 | batch       one Kafka record batch v2, opaque;
                                                        length 0 = no batch (b"")
      CONFIG (1)  body = voters u16 | outgoing u16 | learners u16
                         | node id u32 x (voters + outgoing + learners)
                         each set's ids strictly increasing (canonical: no duplicates)
      NOOP   (2)  body = nothing

    node heartbeat (v1)  version u8 = 1 | src u32 | dst u32 | count u32 | count x beat
    beat                 group u64 | flags u8 | term u32 | commit u64 | context u64 (29 bytes)
    beat flags           bit 0 response (HEARTBEAT_RESPONSE, else HEARTBEAT), bit 1 reject,
                         bit 2 transfer; the other bits must be 0

Entries out, zero-copy: `encode_message` returns the message as a list of parts, the fixed-width
fields packed together and every DATA batch as its own part (the sender's buffer, never copied).
A leader sends the same batches to every follower and a batch can be a megabyte, so joining
them into one `bytes` per follower would copy each batch once per follower; the transport
hands the parts to one gather write (`writelines` / `sendmsg`) instead, and a caller that wants
one buffer joins them itself. An append of k batches is at most 2k + 1 parts.

Entries in, zero-copy: `decode_message` returns each DATA entry's batch as a memoryview slice
of the input (valid as long as the input is, and writable if it is). The batch's header is parsed
(`protocol.record_batch.parse_header`: magic 2, a length that holds a header) and its size must
be the batch length exactly. Its CRC is not checked here: that is a pass over every byte of every
append, the leader checked it when the batch was produced, and damage in transit is the
transport's to catch (TCP's checksum, or a frame checksum on the RPC).

A node heartbeat is small and fixed-width per group (`beat`), so it is one `bytes`. It carries
only what a heartbeat or its response holds (term, commit, context, the flags); src and dst are
the node pair's, once. Encoding a beat that holds anything else (an index, entries, another
type, another node pair) is an `EncodeError`, never a silent drop.

Versions: the first byte of both layouts. A field is added by a new version that this module
reads next to the old ones; which version a peer gets is the RPC's handshake (not here). Any
unknown version, truncation, length or count past the end, unknown enum value or flag bit,
trailing byte or malformed batch header raises `RaftWireError` and nothing else, and no count is
allocated for before it is checked against the bytes that remain.
"""

from __future__ import annotations

import struct
from itertools import pairwise
from typing import Final

from redshank.cluster.raft.batches import Buffer
from redshank.cluster.raft.heartbeat_manager import GroupId, NodeHeartbeat
from redshank.cluster.raft.types import (
    TERM_0,
    Config,
    Entry,
    EntryKind,
    Index,
    Message,
    MessageType,
    NodeId,
    Term,
)
from redshank.protocol.errors import CorruptBatchError, DecodeError, EncodeError
from redshank.protocol.record_batch import parse_header

__all__ = [
    "HEARTBEAT_BEAT_SIZE",
    "WIRE_VERSION",
    "RaftWireError",
    "decode_message",
    "decode_node_heartbeat",
    "encode_message",
    "encode_node_heartbeat",
]

WIRE_VERSION: Final = 1


class RaftWireError(DecodeError, ValueError):
    """The bytes are not a Raft message or node heartbeat this node can read: unknown version,
    truncated, a length or count past the end, an unknown enum value, a bad batch header."""


_HEAD: Final = struct.Struct("<BQBBIIIQIQQI")
_ENTRY: Final = struct.Struct("<BIQ")
_BATCH_LEN: Final = struct.Struct("<I")
_DATA: Final = struct.Struct("<BIQI")  # _ENTRY + _BATCH_LEN, packed in one call
_CONFIG: Final = struct.Struct("<BIQHHH")  # _ENTRY + the three set sizes
_CONFIG_COUNTS: Final = struct.Struct("<HHH")
_NODE_ID_SIZE: Final = 4
_HB_HEAD: Final = struct.Struct("<BIII")
_BEAT: Final = struct.Struct("<QBIQQ")
HEARTBEAT_BEAT_SIZE: Final = _BEAT.size

_REJECT: Final = 0x01
_TRANSFER: Final = 0x02
_MESSAGE_FLAGS: Final = _REJECT | _TRANSFER
_BEAT_RESPONSE: Final = 0x01
_BEAT_REJECT: Final = 0x02
_BEAT_TRANSFER: Final = 0x04
_BEAT_FLAGS: Final = _BEAT_RESPONSE | _BEAT_REJECT | _BEAT_TRANSFER

_MESSAGE_TYPES: Final = {t.value: t for t in MessageType}
_BEAT_TYPE_FLAG: Final = {MessageType.HEARTBEAT: 0, MessageType.HEARTBEAT_RESPONSE: _BEAT_RESPONSE}
_I0: Final = Index(0)


# ---- Message --------------------------------------------------------------------------------

def encode_message(group: GroupId, msg: Message) -> list[bytes | memoryview]:
    """`msg` of `group` as parts to write in order, DATA batches as they are (module docstring:
    why parts). A field out of range or an entry that holds what its kind does not carry is an
    `EncodeError`."""
    flags = (_REJECT if msg.reject else 0) | (_TRANSFER if msg.transfer else 0)
    try:
        pending = bytearray(_HEAD.pack(
            WIRE_VERSION, group, msg.type, flags, msg.src, msg.dst, msg.term, msg.index,
            msg.log_term, msg.commit, msg.context, len(msg.entries)))
        parts: list[bytes | memoryview] = []
        for e in msg.entries:
            if e.kind == EntryKind.DATA:
                if e.config is not None:
                    raise EncodeError(f"DATA entry {e.index} carries a configuration")
                batch = _part_of(e.batch)
                pending += _DATA.pack(EntryKind.DATA, e.term, e.index, len(batch))
                if len(batch):
                    parts.append(bytes(pending))
                    parts.append(batch)
                    pending = bytearray()
            elif e.kind == EntryKind.CONFIG:
                pending += _encode_config_entry(e)
            elif e.kind == EntryKind.NOOP:
                if len(e.batch) or e.config is not None:
                    raise EncodeError(f"NOOP entry {e.index} carries a batch or configuration")
                pending += _ENTRY.pack(EntryKind.NOOP, e.term, e.index)
            else:  # pragma: no cover - EntryKind has three members
                raise EncodeError(f"unknown entry kind {e.kind!r}")
    except struct.error as exc:
        raise EncodeError(f"raft message field out of range: {exc}") from None
    if pending:
        parts.append(bytes(pending))
    return parts


def _part_of(batch: Buffer) -> bytes | memoryview:
    if isinstance(batch, bytes):
        return batch
    view = memoryview(batch)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _encode_config_entry(e: Entry) -> bytes:
    c = e.config
    if c is None or len(e.batch):
        raise EncodeError(f"CONFIG entry {e.index} without a configuration, or with a batch")
    ids = sorted(c.voters) + sorted(c.outgoing) + sorted(c.learners)
    head = _CONFIG.pack(EntryKind.CONFIG, e.term, e.index, len(c.voters), len(c.outgoing),
                        len(c.learners))
    return head + struct.pack(f"<{len(ids)}I", *ids)


def decode_message(buf: Buffer) -> tuple[GroupId, Message]:
    """One encoded message (all of `buf`, nothing after it): its group and the message. DATA
    batches are slices of `buf`, not copies."""
    view = _input_view(buf)
    end = len(view)
    _check_version(view, "raft message")
    if end < _HEAD.size:
        raise RaftWireError(f"raft message truncated: {end} bytes, the header takes {_HEAD.size}")
    (_, group, type_code, flags, src, dst, term, index, log_term, commit, context,
     count) = _HEAD.unpack_from(view)
    mtype = _MESSAGE_TYPES.get(type_code)
    if mtype is None:
        raise RaftWireError(f"unknown raft message type {type_code}")
    if flags & ~_MESSAGE_FLAGS:
        raise RaftWireError(f"unknown raft message flags {flags:#04x}")
    pos = _HEAD.size
    if count > (end - pos) // _ENTRY.size:
        raise RaftWireError(f"raft message claims {count} entries in {end - pos} bytes")
    entries = []
    for _ in range(count):
        entry, pos = _decode_entry(view, pos, end)
        entries.append(entry)
    if pos != end:
        raise RaftWireError(f"raft message has {end - pos} trailing bytes")
    return GroupId(group), Message(
        mtype, NodeId(src), NodeId(dst), Term(term), Index(index), Term(log_term),
        tuple(entries), Index(commit), bool(flags & _REJECT), bool(flags & _TRANSFER), context)


def _decode_entry(view: memoryview, pos: int, end: int) -> tuple[Entry, int]:
    if end - pos < _ENTRY.size:
        raise RaftWireError(f"raft entry truncated at {pos}")
    kind, term, index = _ENTRY.unpack_from(view, pos)
    pos += _ENTRY.size
    if kind == EntryKind.DATA:
        if end - pos < _BATCH_LEN.size:
            raise RaftWireError(f"raft entry {index}: batch length truncated at {pos}")
        (size,) = _BATCH_LEN.unpack_from(view, pos)
        pos += _BATCH_LEN.size
        if size > end - pos:
            raise RaftWireError(f"raft entry {index}: batch of {size} bytes, {end - pos} left")
        if not size:
            return Entry(Term(term), Index(index), EntryKind.DATA, b""), pos
        batch = view[pos:pos + size]
        _check_batch(batch, index)
        return Entry(Term(term), Index(index), EntryKind.DATA, batch), pos + size
    if kind == EntryKind.CONFIG:
        config, pos = _decode_config(view, pos, end, index)
        return Entry(Term(term), Index(index), EntryKind.CONFIG, b"", config), pos
    if kind == EntryKind.NOOP:
        return Entry(Term(term), Index(index), EntryKind.NOOP), pos
    raise RaftWireError(f"raft entry {index}: unknown kind {kind}")


def _check_batch(batch: memoryview, index: int) -> None:
    try:
        header = parse_header(batch)
    except CorruptBatchError as exc:
        raise RaftWireError(f"raft entry {index}: {exc}") from None
    if header.size != len(batch):
        raise RaftWireError(
            f"raft entry {index}: record batch of {header.size} bytes in {len(batch)}")


def _decode_config(view: memoryview, pos: int, end: int, index: int) -> tuple[Config, int]:
    if end - pos < _CONFIG_COUNTS.size:
        raise RaftWireError(f"raft entry {index}: configuration truncated at {pos}")
    n_voters, n_outgoing, n_learners = _CONFIG_COUNTS.unpack_from(view, pos)
    pos += _CONFIG_COUNTS.size
    total = n_voters + n_outgoing + n_learners  # at most 3 * 65535: no allocation yet
    if total * _NODE_ID_SIZE > end - pos:
        raise RaftWireError(f"raft entry {index}: configuration of {total} nodes, "
                            f"{end - pos} bytes left")
    ids = struct.unpack_from(f"<{total}I", view, pos)
    at_outgoing = n_voters
    at_learners = n_voters + n_outgoing
    config = Config(_node_set(ids[:at_outgoing], index), _node_set(ids[at_outgoing:at_learners],
                    index), _node_set(ids[at_learners:], index))
    return config, pos + total * _NODE_ID_SIZE


def _node_set(ids: tuple[int, ...], index: int) -> frozenset[NodeId]:
    # Strictly increasing, as the encoder writes them: a duplicate would vanish in the set.
    for a, b in pairwise(ids):
        if a >= b:
            raise RaftWireError(f"raft entry {index}: configuration node ids not increasing")
    return frozenset(map(NodeId, ids))


# ---- NodeHeartbeat --------------------------------------------------------------------------

def encode_node_heartbeat(hb: NodeHeartbeat) -> bytes:
    """All of `hb` in one buffer: a 13-byte head and 29 bytes per group. A beat that is not a
    heartbeat (or its response) of this node pair, or holds more than one carries, is an
    `EncodeError`."""
    src, dst = hb.src, hb.dst
    out = bytearray(_HB_HEAD.size + _BEAT.size * len(hb.beats))
    try:
        _HB_HEAD.pack_into(out, 0, WIRE_VERSION, src, dst, len(hb.beats))
        pos = _HB_HEAD.size
        pack_into = _BEAT.pack_into
        for group, m in hb.beats:
            flags = _BEAT_TYPE_FLAG.get(m.type)
            if flags is None or m.src != src or m.dst != dst or m.index or m.log_term or m.entries:
                raise EncodeError(f"group {group}: a node heartbeat {src}->{dst} cannot carry "
                                  f"{m.describe()} (index={m.index} log_term={m.log_term})")
            if m.reject:
                flags |= _BEAT_REJECT
            if m.transfer:
                flags |= _BEAT_TRANSFER
            pack_into(out, pos, group, flags, m.term, m.commit, m.context)
            pos += _BEAT.size
    except struct.error as exc:
        raise EncodeError(f"node heartbeat field out of range: {exc}") from None
    return bytes(out)


def decode_node_heartbeat(buf: Buffer) -> NodeHeartbeat:
    """One encoded node heartbeat (all of `buf`); every beat gets the node pair's src and dst."""
    view = _input_view(buf)
    _check_version(view, "node heartbeat")
    end = len(view)
    if end < _HB_HEAD.size:
        raise RaftWireError(f"node heartbeat truncated: {end} bytes")
    _, src_id, dst_id, count = _HB_HEAD.unpack_from(view)
    body = end - _HB_HEAD.size
    if count * _BEAT.size != body:
        raise RaftWireError(f"node heartbeat claims {count} groups in {body} bytes")
    src, dst = NodeId(src_id), NodeId(dst_id)
    hb_type, hbr_type = MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESPONSE
    beats = []
    for group, flags, term, commit, context in _BEAT.iter_unpack(view[_HB_HEAD.size:]):
        if flags & ~_BEAT_FLAGS:
            raise RaftWireError(f"node heartbeat: group {group} has unknown flags {flags:#04x}")
        beats.append((GroupId(group), Message(
            hbr_type if flags & _BEAT_RESPONSE else hb_type, src, dst, Term(term), _I0, TERM_0,
            (), Index(commit), bool(flags & _BEAT_REJECT), bool(flags & _BEAT_TRANSFER),
            context)))
    return NodeHeartbeat(src, dst, tuple(beats))


# ---- shared ---------------------------------------------------------------------------------

def _input_view(buf: Buffer) -> memoryview:
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except TypeError as exc:  # not C-contiguous
            raise RaftWireError(f"raft wire input is not a contiguous buffer: {exc}") from None
    return view


def _check_version(view: memoryview, what: str) -> None:
    if not len(view):
        raise RaftWireError(f"{what}: no bytes")
    if view[0] != WIRE_VERSION:
        raise RaftWireError(f"{what}: unknown version {view[0]}")
