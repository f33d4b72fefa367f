"""Metadata (3): which topics the client asked about, and the answer from the topic table.

Concern: the request's topic selection (`topics = null` means all on v1+, `[]` means none; on v0
`[]` means all, notes G13), whether it may auto-create, and building the response (one broker,
topic ids, leader epochs from the core's leaders table, INT32_MIN authorized operations,
notes G14). Retriable answers while part of the node
restarts (issue 12): a topic that is being created, or that the topic table could not be asked
about, is LEADER_NOT_AVAILABLE (clients keep what they know and ask again), never
UNKNOWN_TOPIC_OR_PARTITION, which makes librdkafka fail the records it queued for the topic; a
partition whose owning core is down is LEADER_NOT_AVAILABLE with leader -1, as Kafka answers for
an offline partition. Must not know: how topics are stored or created, sockets, actors.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from redshank.cluster.kafka.leaders_table import UNKNOWN_EPOCH, LeadersTable
from redshank.cluster.kafka.topic_table import TopicInfo, TopicPartition, validate_topic_name
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.fast_dataclass import dataclass
from redshank.protocol.messages.metadata import (
    MetadataRequest,
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)

__all__ = ["BrokerAddress", "ClusterView", "MetadataQuery", "ReplicatedPartition",
           "ReplicatedTopic", "build", "cluster_id", "decode_view", "encode_view", "local_query",
           "query", "with_cluster"]

_NO_OPS = -2147483648  # INT32_MIN: authorized operations not computed (notes G14)
_NO_ID = uuid.UUID(int=0)
# The coordinators' topics, which Metadata marks internal (as Kafka does).
_INTERNAL = frozenset({"__consumer_offsets", "__transaction_state"})


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class MetadataQuery:
    """`names` None: every topic. `create`: names the table should auto-create if missing."""

    names: tuple[str, ...] | None
    create: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplicatedPartition:
    replicas: tuple[int, ...]  # node ids, the preferred leader first
    leader: int  # -1: no leader known
    epoch: int  # the leader's Raft term (-1: unknown)
    # The replicas the leader sees caught up (`cluster/kafka/isr`); None: not known here (the
    # replicas are said, as before Raft progress was asked).
    isr: tuple[int, ...] | None = None
    # Replicas on nodes not heard from lately (the node's liveness view): Metadata v5+'s
    # `offline_replicas`, and never in the ISR (Kafka's rule for a replica on a dead broker).
    offline: tuple[int, ...] = ()

    def without(self, dead: frozenset[int]) -> ReplicatedPartition:
        """This partition with the replicas on `dead` nodes offline and out of the ISR (an ISR
        not known here becomes the live replicas)."""
        off = tuple(r for r in self.replicas if r in dead)
        if not off:
            return self
        isr = tuple(r for r in (self.replicas if self.isr is None else self.isr)
                    if r not in dead)
        return ReplicatedPartition(self.replicas, self.leader, self.epoch, isr, off)


@dataclass(frozen=True, slots=True)
class ReplicatedTopic:
    topic_id: uuid.UUID
    partitions: tuple[ReplicatedPartition, ...]


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the controller (group 0) says for a Metadata request in cluster mode: every active
    broker, the controller's leader, and the asked topics it holds (all of them when asked for
    all), with their leaders as this node's replicas know them."""

    brokers: tuple[BrokerAddress, ...]
    controller_id: int
    topics: Mapping[str, ReplicatedTopic]
    # The cluster's id, the same from every node (`cluster_id`); None: not known yet.
    cluster_id: str | None = None
    # The node Metadata names controller, where Kafka clients send admin requests: a node with
    # a controller replica names itself (it proposes to the leader for them, as KRaft brokers
    # forward), so a client never waits on a leader that died after it asked; -1: the leader.
    # DescribeCluster keeps `controller_id`, the leader, for operators.
    admin_id: int = -1


def cluster_id(cluster_uuid: uuid.UUID) -> str:
    """The id Metadata and DescribeCluster give for the cluster the controller bootstrapped."""
    return f"redshank-{cluster_uuid}"


def encode_view(view: ClusterView) -> bytes:
    """A `ClusterView` as a node sends it to a node that hosts no controller replica (JSON)."""
    return json.dumps({
        "brokers": [[b.node_id, b.host, b.port] for b in view.brokers],
        "controller": view.controller_id,
        "cluster_id": view.cluster_id,
        "admin": view.admin_id,
        "topics": {name: [str(t.topic_id), [
            [list(p.replicas), p.leader, p.epoch, None if p.isr is None else list(p.isr),
             list(p.offline)]
            for p in t.partitions]] for name, t in view.topics.items()},
    }, separators=(",", ":")).encode()


def decode_view(raw: bytes) -> ClusterView:
    """`encode_view`'s bytes back; raises ValueError (or KeyError, TypeError) on bad ones."""
    d = json.loads(raw)
    topics = {str(name): ReplicatedTopic(uuid.UUID(t[0]), tuple(
        ReplicatedPartition(tuple(int(r) for r in p[0]), int(p[1]), int(p[2]),
                            None if p[3] is None else tuple(int(n) for n in p[3]),
                            tuple(int(n) for n in p[4]) if len(p) > 4 else ())
        for p in t[1])) for name, t in d["topics"].items()}
    cid = d.get("cluster_id")
    return ClusterView(tuple(BrokerAddress(int(b[0]), str(b[1]), int(b[2]))
                             for b in d["brokers"]), int(d["controller"]), topics,
                       None if cid is None else str(cid), int(d.get("admin", -1)))


def local_query(q: MetadataQuery, cluster: ClusterView) -> MetadataQuery:
    """The part of `q` the node's own topic table answers: the names the controller does not
    hold (never auto-created locally under a controller topic's name)."""
    if q.names is None:
        return q
    return MetadataQuery(tuple(n for n in q.names if n not in cluster.topics),
                         tuple(n for n in q.create if n not in cluster.topics))


def with_cluster(local: MetadataResponse, q: MetadataQuery, cluster: ClusterView
                 ) -> MetadataResponse:
    """The node-local answer (`build` over `local_query`) with the cluster's brokers and the
    controller's topics, in the order asked (all topics: by name)."""
    by_name = {t.name: t for t in local.topics if t.name is not None}
    for name, topic in cluster.topics.items():
        by_name[name] = _replicated(name, topic)
    names = q.names if q.names is not None else tuple(sorted(by_name))
    brokers = cluster.brokers or tuple(
        BrokerAddress(b.node_id, b.host, b.port) for b in local.brokers)
    return MetadataResponse(
        brokers=tuple(MetadataResponseBroker(b.node_id, b.host, b.port, None) for b in brokers),
        cluster_id=cluster.cluster_id or local.cluster_id,
        controller_id=cluster.admin_id if cluster.admin_id > 0
        else cluster.controller_id if cluster.controller_id > 0 else local.controller_id,
        topics=tuple(by_name[n] for n in names if n in by_name),
        cluster_authorized_operations=_NO_OPS,
    )


def _replicated(name: str, topic: ReplicatedTopic) -> MetadataResponseTopic:
    partitions = tuple(
        MetadataResponsePartition(
            error_code=0 if p.leader >= 0 else ErrorCode.LEADER_NOT_AVAILABLE,
            partition_index=i,
            leader_id=p.leader,
            leader_epoch=p.epoch,
            replica_nodes=p.replicas,
            isr_nodes=p.replicas if p.isr is None else p.isr,
            offline_replicas=p.offline,
        ) for i, p in enumerate(topic.partitions))
    return MetadataResponseTopic(error_code=0, name=name, topic_id=topic.topic_id,
                                 is_internal=name in _INTERNAL,
                                 partitions=partitions, topic_authorized_operations=_NO_OPS)


def query(request: MetadataRequest, version: int, auto_create: bool) -> MetadataQuery:
    topics = request.topics
    if topics is None or (version == 0 and not topics):
        return MetadataQuery(None, ())
    names = tuple(t.name for t in topics if t.name is not None)
    allowed = auto_create and (version < 4 or request.allow_auto_topic_creation)
    create = tuple(n for n in names if allowed and validate_topic_name(n) is None)
    return MetadataQuery(names, create)


def build(
    request: MetadataRequest,
    version: int,
    broker: BrokerAddress,
    cluster_id: str | None,
    q: MetadataQuery,
    topics: Mapping[str, TopicInfo],
    not_ready: frozenset[str] = frozenset(),
    offline_cores: frozenset[int] = frozenset(),
    leaders: LeadersTable | None = None,
) -> MetadataResponse:
    """`topics`: what the table holds for the query; `not_ready`: topics without a leader yet
    (or not known to exist or not: the table was unreachable); `offline_cores`: cores that are
    down now, whose partitions have no leader; `leaders`: the leader epochs announced to this
    core (KIP-320; -1 for a partition not announced yet: clients then skip epoch checks)."""
    names = q.names if q.names is not None else tuple(sorted(topics))
    out = [_topic(name, topics.get(name), broker.node_id, name in not_ready, offline_cores,
                  leaders) for name in names]
    return MetadataResponse(
        brokers=(MetadataResponseBroker(broker.node_id, broker.host, broker.port, None),),
        cluster_id=cluster_id,
        controller_id=broker.node_id,
        topics=tuple(out),
        cluster_authorized_operations=_NO_OPS,
    )


def _topic(name: str, info: TopicInfo | None, node_id: int, not_ready: bool,
           offline_cores: frozenset[int], leaders: LeadersTable | None
           ) -> MetadataResponseTopic:
    if info is None and validate_topic_name(name) is not None:
        return MetadataResponseTopic(
            error_code=ErrorCode.INVALID_TOPIC_EXCEPTION, name=name,
            topic_authorized_operations=_NO_OPS,
        )
    if not_ready:  # before "unknown": a topic not known for sure is not said to be missing
        return MetadataResponseTopic(
            error_code=ErrorCode.LEADER_NOT_AVAILABLE,
            name=name,
            topic_id=info.topic_id if info is not None else _NO_ID,
            topic_authorized_operations=_NO_OPS,
        )
    if info is None:
        return MetadataResponseTopic(
            error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name,
            topic_authorized_operations=_NO_OPS,
        )
    partitions = tuple(
        _partition(p, core in offline_cores, node_id,
                   UNKNOWN_EPOCH if leaders is None
                   else leaders.epoch(TopicPartition(name, p), info.topic_id))
        for p, core in enumerate(info.cores))
    return MetadataResponseTopic(
        error_code=0,
        name=name,
        topic_id=info.topic_id,
        is_internal=name in _INTERNAL,
        partitions=partitions,
        topic_authorized_operations=_NO_OPS,
    )


def _partition(p: int, offline: bool, node_id: int, epoch: int) -> MetadataResponsePartition:
    if offline:  # its owning core is restarting: no leader until it is back
        return MetadataResponsePartition(
            error_code=ErrorCode.LEADER_NOT_AVAILABLE,
            partition_index=p,
            leader_id=-1,
            leader_epoch=epoch,
            replica_nodes=(node_id,),
            isr_nodes=(),
            offline_replicas=(node_id,),
        )
    return MetadataResponsePartition(
        error_code=0,
        partition_index=p,
        leader_id=node_id,
        leader_epoch=epoch,
        replica_nodes=(node_id,),
        isr_nodes=(node_id,),
        offline_replicas=(),
    )
