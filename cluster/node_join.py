"""How a node joins its cluster through the controller (Raft group 0): the decisions, on values.

Concern: who votes in group 0 (the seeds, known by the HELLO answers), the voters record a node
keeps so that later starts need no seed reachable (`<data>/cluster/controller_voters.json`, its
bytes), who proposes `BootstrapCluster` (the lowest seed id, once, while neither the node's
identity nor the controller's state knows a cluster), whether a node must (re)register, and the
view of the controller a node shows (`<data>/cluster/controller.json`, for tools and tests):

    start (seed)                           every later start
    ------------                           -----------------
    HELLO every seed --> voters record --> ControllerHost(voters) --> leader known
      lowest id, no cluster yet:  propose BootstrapCluster(uuid4(), every voter)
      everyone, once a cluster is known: the uuid into the node identity; RegisterNode if
      absent or changed (refused duplicates are fine: apply decides)

Must not know: files, sockets, asyncio, the controller host (callers pass values in).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from redshank.cluster.controller import BootstrapCluster, ControllerStm, RegisterNode
from redshank.cluster.controller.members_table import NetAddress, NodeInfo
from redshank.cluster.node_hello import Hello
from redshank.cluster.raft.types import NO_NODE, NodeId

__all__ = ["VIEW_FILE", "VOTERS_FILE", "VotersFileError", "bootstrap_command",
           "controller_view", "decode_voters", "encode_voters", "is_voter", "needs_register",
           "register_command", "should_bootstrap"]

VOTERS_FILE = "cluster/controller_voters.json"
VIEW_FILE = "cluster/controller.json"
_VERSION = 1


class VotersFileError(ValueError):
    """The voters record's bytes are not one we can read."""


def is_voter(own: Iterable[NetAddress], seeds: Iterable[NetAddress]) -> bool:
    """A node votes in group 0 when one of its own RPC addresses (listen or advertised, core 0)
    is among the seeds."""
    return not set(own).isdisjoint(seeds)


def register_command(hello: Hello) -> RegisterNode:
    return RegisterNode(hello.node_id, hello.incarnation, hello.rpc_addr, hello.kafka_addr,
                        hello.cores)


def should_bootstrap(node: NodeId, voters: Iterable[RegisterNode],
                     identity_cluster: uuid.UUID | None, stm_cluster: uuid.UUID | None) -> bool:
    """Only the lowest voter id bootstraps, and only while no cluster is known here: neither in
    the node identity (written once the controller showed one) nor in the state applied so far.
    A second proposal, should this node not have caught up, is refused when applied."""
    ids = [v.node_id for v in voters]
    return bool(ids) and node == min(ids) and identity_cluster is None and stm_cluster is None


def bootstrap_command(cluster_uuid: uuid.UUID, voters: Iterable[RegisterNode]
                      ) -> BootstrapCluster:
    return BootstrapCluster(cluster_uuid, tuple(sorted(voters, key=lambda v: v.node_id)))


def needs_register(known: NodeInfo | None, me: RegisterNode) -> bool:
    """Propose `me` when the node is absent, or is this incarnation with other addresses or more
    cores (another incarnation, or a decommissioned node, would only be refused)."""
    if known is None:
        return True
    if known.incarnation != me.incarnation or not known.active:
        return False
    return (known.rpc_addr, known.kafka_addr, known.cores) != \
        (me.rpc_addr, me.kafka_addr, me.cores)


def encode_voters(voters: Iterable[RegisterNode]) -> bytes:
    record = {"version": _VERSION, "voters": [
        {"node_id": int(v.node_id), "node_uuid": str(v.incarnation), "rpc": str(v.rpc_addr),
         "kafka": str(v.kafka_addr), "cores": v.cores}
        for v in sorted(voters, key=lambda v: v.node_id)]}
    return (json.dumps(record, indent=1) + "\n").encode()


def decode_voters(data: bytes) -> tuple[RegisterNode, ...]:
    try:
        record = json.loads(data.decode())
        if not isinstance(record, dict) or record.get("version") != _VERSION:
            raise VotersFileError(f"unknown voters record {str(record)[:80]!r}")
        voters = tuple(RegisterNode(NodeId(int(v["node_id"])), uuid.UUID(v["node_uuid"]),
                                    _address(v["rpc"]), _address(v["kafka"]), int(v["cores"]))
                       for v in record["voters"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, VotersFileError):
            raise
        raise VotersFileError(f"bad voters record: {exc}") from None
    if not voters or len({v.node_id for v in voters}) != len(voters):
        raise VotersFileError("no voters, or one named twice")
    return voters


def _address(text: object) -> NetAddress:
    if not isinstance(text, str):
        raise VotersFileError(f"bad address {text!r}")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise VotersFileError(f"bad address {text!r}")
    return NetAddress(host, int(port))


def controller_view(node: NodeId, voters: Iterable[RegisterNode], stm: ControllerStm,
                    leader: NodeId, term: int, applied: int) -> dict[str, Any]:
    """This node's view of the controller, as `controller.json` holds it (JSON values only).
    `applied`: commands applied here (the Kafka offset of the next one)."""
    return {
        "node_id": int(node),
        "cluster_uuid": "" if stm.cluster_uuid is None else str(stm.cluster_uuid),
        "leader": None if leader == NO_NODE else int(leader),
        "term": term,
        "applied": applied,
        "voters": sorted(int(v.node_id) for v in voters),
        "members": [{"node_id": int(m.node_id), "node_uuid": str(m.incarnation),
                     "rpc": str(m.rpc_addr), "kafka": str(m.kafka_addr), "cores": m.cores,
                     "state": m.state.name.lower()} for m in stm.members],
        "topics": len(stm.topics),
    }
