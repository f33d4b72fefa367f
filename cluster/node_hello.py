"""HELLO between nodes: what each tells the other, its bytes, and what the caller concludes.

Concern: the HELLO payload (both ways the same record: node id, incarnation, cluster UUID, core
count, Kafka and RPC advertised addresses; the fields a controller's `RegisterNode` needs later)
and `check_peer`, the caller's verdict on an answer:

    caller (starting with seeds)                 seed (core 0: rpc base port + 0)
    ----------------------------                 --------------------------------
    Hello(me) ---------- HELLO request ---------> records the caller as a peer
              <--------- HELLO response --------- Hello(seed)
    check_peer(me, seed):
      same id, same incarnation     -> SELF (our own address among the seeds)
      same id, other incarnation    -> DUPLICATE_NODE_ID: this node exits, the seed runs on
      both clusters known, differ   -> CLUSTER_MISMATCH: this node exits
      otherwise                     -> PEER (`peer_seen`)

The newcomer is the one refused: the node already serving under that id keeps serving.

Layout (big-endian): version int8 | node_id int32 | incarnation 16 bytes | has_cluster int8
[| cluster_uuid 16 bytes] | cores int32 | kafka host string | kafka port int32 | rpc host string
| rpc port int32, where string = int16 length then UTF-8. Bad bytes raise `HelloDecodeError`.
Must not know: sockets, RPC method ids, files.
"""

from __future__ import annotations

import enum
import struct
import uuid

from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.raft.types import NodeId
from redshank.protocol.errors import DecodeError
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["Hello", "HelloDecodeError", "PeerVerdict", "check_peer", "decode_hello",
           "encode_hello", "refusal_message"]

_VERSION = 1
_HEAD = struct.Struct(">bi16sb")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


class HelloDecodeError(DecodeError):
    """A HELLO payload that is truncated, too long, of an unknown version or out of range."""


@dataclass(frozen=True, slots=True)
class Hello:
    node_id: NodeId
    incarnation: uuid.UUID
    cluster_uuid: uuid.UUID | None
    cores: int
    kafka_addr: NetAddress
    rpc_addr: NetAddress


class PeerVerdict(enum.IntEnum):
    PEER = 0
    SELF = 1
    DUPLICATE_NODE_ID = 2
    CLUSTER_MISMATCH = 3


def check_peer(me: Hello, peer: Hello) -> PeerVerdict:
    if peer.node_id == me.node_id:
        if peer.incarnation == me.incarnation:
            return PeerVerdict.SELF
        return PeerVerdict.DUPLICATE_NODE_ID
    if me.cluster_uuid is not None and peer.cluster_uuid is not None \
            and me.cluster_uuid != peer.cluster_uuid:
        return PeerVerdict.CLUSTER_MISMATCH
    return PeerVerdict.PEER


def refusal_message(verdict: PeerVerdict, me: Hello, peer: Hello, seed: NetAddress) -> str:
    """One line for stderr: why this node refuses to run next to `peer` (reached at `seed`)."""
    if verdict is PeerVerdict.DUPLICATE_NODE_ID:
        return (f"node id {me.node_id} is already used by the node at {seed} (node uuid "
                f"{peer.incarnation}, ours {me.incarnation}): duplicate_node_id")
    if verdict is PeerVerdict.CLUSTER_MISMATCH:
        return (f"the node at {seed} (node {peer.node_id}) belongs to cluster "
                f"{peer.cluster_uuid}, this node to {me.cluster_uuid}: cluster_mismatch")
    raise ValueError(f"{verdict.name} is no refusal")


def encode_hello(hello: Hello) -> bytes:
    try:
        parts = [_HEAD.pack(_VERSION, hello.node_id, hello.incarnation.bytes,
                            hello.cluster_uuid is not None)]
        if hello.cluster_uuid is not None:
            parts.append(hello.cluster_uuid.bytes)
        parts.append(_I32.pack(hello.cores))
        for addr in (hello.kafka_addr, hello.rpc_addr):
            host = addr.host.encode()
            parts += [_I16.pack(len(host)), host, _I32.pack(addr.port)]
    except struct.error as exc:
        raise ValueError(f"hello does not fit its layout: {exc}") from None
    return b"".join(parts)


def decode_hello(data: bytes | memoryview) -> Hello:
    buf = bytes(data)
    try:
        version, node_id, incarnation, has_cluster = _HEAD.unpack_from(buf, 0)
        if version != _VERSION:
            raise HelloDecodeError(f"unknown hello version {version}")
        pos = _HEAD.size
        cluster: uuid.UUID | None = None
        if has_cluster:
            cluster = uuid.UUID(bytes=buf[pos:pos + 16])
            pos += 16
        (cores,) = _I32.unpack_from(buf, pos)
        pos += 4
        addrs = []
        for _ in range(2):
            (length,) = _I16.unpack_from(buf, pos)
            pos += 2
            if length < 0 or pos + length > len(buf):
                raise HelloDecodeError("host string past the end")
            host = buf[pos:pos + length].decode()
            pos += length
            (port,) = _I32.unpack_from(buf, pos)
            pos += 4
            addrs.append(NetAddress(host, port))
    except (struct.error, ValueError) as exc:  # UnicodeDecodeError, a short uuid
        if isinstance(exc, HelloDecodeError):
            raise
        raise HelloDecodeError(f"bad hello: {exc}") from None
    if pos != len(buf):
        raise HelloDecodeError(f"{len(buf) - pos} bytes after the hello")
    if node_id < 0 or cores < 1 or not all(0 <= a.port <= 65535 for a in addrs):
        raise HelloDecodeError("hello field out of range")
    return Hello(NodeId(node_id), uuid.UUID(bytes=incarnation), cluster, cores, addrs[0],
                 addrs[1])
