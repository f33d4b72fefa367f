"""Who this node is, as its data directory remembers it: node id, incarnation, seeds, cluster.

Concern: the identity record a node keeps in `<data>/cluster/node_identity.json` (the bytes of
that file, parsed and checked), and the decision at start: a data directory first started as
node 3 stays node 3 (started as another id it is refused: two ids over one log would make one
replica answer for two), and it keeps its incarnation (a new random UUID only when the record is
new: a wiped disk is a new incarnation, as in Redpanda's node UUID). `cluster_uuid` stays None
until the controller of Raft group 0 assigns one (`BootstrapCluster`); the controller host writes
it then. Must not know: files, fsync, sockets, the controller's log (the host reads and writes
the bytes).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.raft.types import NodeId
from redshank.protocol.fast_dataclass import dataclass

__all__ = [
    "IDENTITY_FILE",
    "MAX_NODE_ID",
    "IdentityFileError",
    "IdentityRefused",
    "NodeIdentity",
    "decode_identity",
    "encode_identity",
    "resolve_identity",
]

# Relative to the data directory; `cluster/` holds node-level (not per-partition) state.
IDENTITY_FILE = "cluster/node_identity.json"
# Kafka broker ids are int32 and Metadata answers them as such.
MAX_NODE_ID = 2**31 - 1
_VERSION = 1


class IdentityFileError(ValueError):
    """The identity file's bytes are not an identity record we can read."""


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    node_id: NodeId
    # A new UUID when the data directory first starts; never changes afterwards.
    incarnation: uuid.UUID
    # The seeds of the latest start (informational: the flags decide each start).
    seeds: tuple[NetAddress, ...] = ()
    # None until a controller assigns the node to a cluster.
    cluster_uuid: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class IdentityRefused:
    """The data directory belongs to another node id."""

    stored: NodeId
    started_as: NodeId

    def message(self, data_dir: str) -> str:
        return (f"data dir {data_dir} belongs to node {self.stored}, "
                f"started as node {self.started_as}")


def resolve_identity(stored: NodeIdentity | None, node_id: int,
                     seeds: tuple[NetAddress, ...],
                     new_incarnation: uuid.UUID) -> NodeIdentity | IdentityRefused:
    """The identity to run (and store) for a start as `node_id` with `seeds`, or a refusal.

    First start (nothing stored): a new record with `new_incarnation`. Later starts: the stored
    record, with the seeds of this start; the incarnation and cluster are kept."""
    if stored is None:
        return NodeIdentity(NodeId(node_id), new_incarnation, seeds, None)
    if stored.node_id != node_id:
        return IdentityRefused(stored.node_id, NodeId(node_id))
    return replace(stored, seeds=seeds)


def encode_identity(identity: NodeIdentity) -> bytes:
    record = {
        "version": _VERSION,
        "node_id": int(identity.node_id),
        "node_uuid": str(identity.incarnation),
        "seeds": [str(s) for s in identity.seeds],
        "cluster_uuid": "" if identity.cluster_uuid is None else str(identity.cluster_uuid),
    }
    return (json.dumps(record, indent=1) + "\n").encode()


def decode_identity(data: bytes) -> NodeIdentity:
    """Parse an identity file; any damage is an `IdentityFileError` naming what is wrong."""
    try:
        record = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IdentityFileError(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise IdentityFileError("not a JSON object")
    if record.get("version") != _VERSION:
        raise IdentityFileError(f"unknown version {record.get('version')!r}")
    node_id = record.get("node_id")
    if not isinstance(node_id, int) or isinstance(node_id, bool) \
            or not 0 <= node_id <= MAX_NODE_ID:
        raise IdentityFileError(f"bad node_id {node_id!r}")
    incarnation = _uuid(record.get("node_uuid"), "node_uuid")
    if incarnation is None:
        raise IdentityFileError("empty node_uuid")
    seeds = record.get("seeds", [])
    if not isinstance(seeds, list):
        raise IdentityFileError("seeds is not a list")
    return NodeIdentity(NodeId(node_id), incarnation, tuple(_address(s) for s in seeds),
                        _uuid(record.get("cluster_uuid", ""), "cluster_uuid"))


def _uuid(value: object, name: str) -> uuid.UUID | None:
    if value == "":
        return None
    if not isinstance(value, str):
        raise IdentityFileError(f"bad {name} {value!r}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise IdentityFileError(f"bad {name} {value!r}") from None


def _address(value: object) -> NetAddress:
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host and port.isdigit() and 0 < int(port) <= 65535:
            return NetAddress(host, int(port))
    raise IdentityFileError(f"bad seed {value!r}")
