"""Controller snapshots: round trip, refusal of damaged bytes, and the properties that matter
for replicas: restoring the snapshot taken at k and replaying k+1..n gives the state of replaying
1..n, and two replicas applying the same log (through the codec) reach identical snapshots.
Logs are random (seeded) and include proposals that race: several are computed from the same
view before any of them is applied."""

from __future__ import annotations

import dataclasses
import random
import struct
import uuid
import zlib

import pytest

from redshank.cluster.controller import (
    PRODUCER_ID_BLOCK,
    SNAPSHOT_VERSION,
    AllocateProducerIds,
    AlterTopicConfigs,
    Applied,
    BootstrapCluster,
    Command,
    ControllerDecodeError,
    ControllerSnapshot,
    ControllerStm,
    CreatePartitions,
    CreateTopic,
    DecommissionNode,
    DeleteTopic,
    NetAddress,
    RegisterNode,
    SetPreferredReplica,
    decode_command,
    decode_snapshot,
    encode_command,
    encode_snapshot,
    place,
)
from redshank.cluster.kafka.topic_configs import ConfigOp
from redshank.cluster.raft.types import Index, NodeId
from redshank.protocol.error_codes import ErrorCode

NAMES = [f"t{i}" for i in range(6)]
CONFIGS = [("retention.ms", "1000"), ("retention.ms", "-5"), ("cleanup.policy", "compact"),
           ("segment.bytes", "1048576"), ("max.message.bytes", "big"), ("unknown.key", "1")]
Log = list[tuple[Index, bytes]]


def _node(rng: random.Random, n: int, cores: int, incarnation: uuid.UUID | None = None
          ) -> RegisterNode:
    return RegisterNode(NodeId(n), incarnation or uuid.UUID(int=rng.getrandbits(128)),
                        NetAddress(f"n{n}", 33145), NetAddress(f"n{n}", 9092), cores)


def _propose(rng: random.Random, view: ControllerStm) -> Command:
    """A command a proposer might send, seeing `view` (sometimes a bad or stale one)."""
    nodes = list(view.members)
    top = max((n.node_id for n in nodes), default=0)
    roll = rng.random()
    if roll < 0.10:
        known = rng.choice(nodes)
        if rng.random() < 0.5:  # a restart, maybe with more cores, maybe a stranger
            inc = known.incarnation if rng.random() < 0.8 else None
            return _node(rng, known.node_id, known.cores + rng.randint(-1, 2), inc)
        return _node(rng, top + 1, rng.randint(1, 4))
    if roll < 0.15:
        return DecommissionNode(NodeId(rng.randint(1, top + 1)))
    if roll < 0.45:
        rf = rng.randint(1, 3)
        placed = place(rng.randint(1, 5), rf, view.members.active_cores(),
                       (a for _tp, a in view.topics.assignments()))
        assignments = placed if isinstance(placed, tuple) else ()
        configs = tuple(dict(rng.sample(CONFIGS, rng.randint(0, 2))).items())
        return CreateTopic(rng.choice(NAMES), uuid.UUID(int=rng.getrandbits(128)),
                           len(assignments) or 1, rf, configs, assignments)
    name = rng.choice(NAMES)
    topic = view.topics.get(name)
    if roll < 0.55:
        return DeleteTopic(name, None if topic is None or rng.random() < 0.5 else topic.topic_id)
    if roll < 0.70:
        have = topic.partitions if topic is not None else 1
        rf = topic.replication_factor if topic is not None else 1
        more = rng.randint(1, 3)
        placed = place(more, rf, view.members.active_cores(),
                       (a for _tp, a in view.topics.assignments()))
        return CreatePartitions(name, have + more, placed if isinstance(placed, tuple) else ())
    if roll < 0.82:
        ops = tuple((ConfigOp(rng.randrange(4)), k, v if rng.random() < 0.95 else None)
                    for k, v in rng.sample(CONFIGS, rng.randint(1, 2)))
        return AlterTopicConfigs(name, ops, replace=rng.random() < 0.1)
    if roll < 0.92:
        return AllocateProducerIds(NodeId(rng.randint(1, top + 1)))
    partition = rng.randint(0, topic.partitions if topic is not None else 1)
    return SetPreferredReplica(name, partition, NodeId(rng.randint(1, top)))


def random_log(seed: int, n: int) -> Log:
    """`n` encoded commands at increasing indexes (with gaps, as Raft's own entries leave), in
    rounds of 1-3 proposals made from the same view before any of them applies."""
    rng = random.Random(seed)
    founders = tuple(_node(rng, i, rng.randint(1, 4)) for i in range(1, rng.randint(1, 4) + 1))
    view = ControllerStm()
    log: Log = []
    index = 0
    pending: list[Command] = [BootstrapCluster(uuid.UUID(int=seed), founders)]
    while len(log) < n:
        for cmd in pending:
            index += rng.randint(1, 3)
            log.append((Index(index), encode_command(cmd)))
            view.apply(Index(index), cmd)
        pending = [_propose(rng, view) for _ in range(rng.randint(1, 3))]
    return log


def replay(log: Log, stm: ControllerStm | None = None) -> tuple[ControllerStm, list[Applied]]:
    stm = stm or ControllerStm()
    return stm, [stm.apply(i, decode_command(raw)) for i, raw in log]


def check_invariants(stm: ControllerStm) -> None:
    for t in stm.topics:
        for a in t.assignments:
            assert len(a) == t.replication_factor
            assert len({r.node_id for r in a}) == len(a)
            for r in a:
                info = stm.members.get(r.node_id)
                assert info is not None and 0 <= r.core < info.cores
    assert stm.next_producer_id % PRODUCER_ID_BLOCK == 0


@pytest.mark.parametrize("seed", range(30))
def test_snapshot_at_k_plus_replay_equals_full_replay(seed: int) -> None:
    log = random_log(seed, 120)
    full, results = replay(log)
    check_invariants(full)
    rng = random.Random(seed)
    for k in [*sorted(rng.sample(range(len(log) + 1), 4)), 0, len(log)]:
        at_k, _ = replay(log[:k])
        restored = ControllerStm()
        restored.restore(at_k.snapshot())
        assert restored.snapshot() == at_k.snapshot()
        _, tail = replay(log[k:], restored)
        assert tail == results[k:]
        assert restored.snapshot() == full.snapshot()
        assert restored.last_applied == full.last_applied == log[-1][0]


def test_random_logs_are_not_vacuous() -> None:
    """The generated logs create, grow, alter and delete topics, and race into refusals."""
    seen: dict[str, int] = {}
    for seed in range(30):
        full, results = replay(random_log(seed, 120))
        seen["ok"] = seen.get("ok", 0) + sum(r.ok for r in results)
        seen["refused"] = seen.get("refused", 0) + sum(not r.ok for r in results)
        seen["topics_left"] = seen.get("topics_left", 0) + len(full.topics)
        seen["exists"] = seen.get("exists", 0) + sum(
            r.error_code == ErrorCode.TOPIC_ALREADY_EXISTS for r in results)
    assert seen["ok"] > 1000 and seen["refused"] > 500 and seen["topics_left"] > 60
    assert seen["exists"] > 50


@pytest.mark.parametrize("seed", range(100, 110))
def test_two_replicas_applying_the_same_log_reach_identical_snapshots(seed: int) -> None:
    log = random_log(seed, 150)
    a, results_a = replay(log)
    # The other replica restarts twice from its own snapshots on the way.
    b = ControllerStm()
    results_b: list[Applied] = []
    for lo, hi in ((0, 40), (40, 97), (97, len(log))):
        restarted = ControllerStm()
        restarted.restore(b.snapshot())
        b = restarted
        results_b += replay(log[lo:hi], b)[1]
    assert results_a == results_b
    assert a.snapshot() == b.snapshot()
    assert list(a.members) == list(b.members) and list(a.topics) == list(b.topics)


def test_empty_state_round_trips() -> None:
    stm = ControllerStm()
    s = decode_snapshot(stm.snapshot())
    assert s == ControllerSnapshot(Index(0), None, 0, (), ())
    assert encode_snapshot(s) == stm.snapshot()


def test_layout_starts_with_version_and_crc() -> None:
    stm, _ = replay(random_log(1, 30))
    raw = stm.snapshot()
    version, crc = struct.unpack_from(">hI", raw)
    assert version == SNAPSHOT_VERSION and crc == zlib.crc32(raw[6:])
    assert struct.unpack_from(">q", raw, 6)[0] == stm.last_applied


@pytest.mark.parametrize("cut", [0, 3, 6, 20])
def test_truncated_snapshot_is_refused(cut: int) -> None:
    stm, _ = replay(random_log(2, 30))
    with pytest.raises(ControllerDecodeError):
        decode_snapshot(stm.snapshot()[:cut])


def test_unknown_version_bad_crc_and_trailing_bytes_are_refused() -> None:
    stm, _ = replay(random_log(3, 30))
    raw = stm.snapshot()
    with pytest.raises(ControllerDecodeError, match="version"):
        decode_snapshot(struct.pack(">h", 2) + raw[2:])
    with pytest.raises(ControllerDecodeError, match="CRC"):
        decode_snapshot(raw[:-1] + bytes([raw[-1] ^ 1]))
    body = raw[6:] + b"\x00"
    with pytest.raises(ControllerDecodeError, match="trailing"):
        decode_snapshot(struct.pack(">hI", SNAPSHOT_VERSION, zlib.crc32(body)) + body)


def test_fuzz_bodies_with_valid_crc_decode_or_raise_the_one_error() -> None:
    rng = random.Random(11)
    stm, _ = replay(random_log(4, 60))
    body = bytearray(stm.snapshot()[6:])
    refused = 0
    for _ in range(1500):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(mutated))
            if rng.random() < 0.7:
                mutated[at] = rng.randrange(256)
            else:
                del mutated[at:at + rng.randint(1, 20)]
        raw = struct.pack(">hI", SNAPSHOT_VERSION, zlib.crc32(mutated)) + bytes(mutated)
        target = ControllerStm()
        try:
            target.restore(raw)
        except ControllerDecodeError:
            refused += 1
            assert target.snapshot() == ControllerStm().snapshot()  # left as it was
    assert refused > 500


def test_duplicates_in_a_snapshot_are_refused() -> None:
    stm, _ = replay(random_log(5, 60))
    s = decode_snapshot(stm.snapshot())
    assert s.nodes and s.topics
    for bad in (dataclasses.replace(s, nodes=s.nodes + s.nodes[:1]),
                dataclasses.replace(s, topics=s.topics + s.topics[:1]),
                dataclasses.replace(s, topics=(
                    *s.topics, dataclasses.replace(s.topics[0], name="other")))):
        with pytest.raises(ControllerDecodeError, match="twice"):
            ControllerStm().restore(encode_snapshot(bad))
