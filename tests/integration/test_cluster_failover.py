"""Failover under load on a 3-node cluster (issue 14): an idempotent acks=all confluent-kafka
producer writes unique ids to an RF=3 topic without pause while a consumer (assigned every
partition, no group membership) reads them, and in each of a few rounds the node leading a
partition is SIGKILLed whole (then restarted on its data dir and caught up), or SIGSTOPped long
enough for the others to elect a leader and then SIGCONTed (it must neither serve stale data
nor take writes when it wakes). The time from the fault until a record produced after it is
acknowledged on that partition is printed per round (a figure, not asserted). At the end every
partition is read in full and the History checks: no acknowledged record lost, none twice,
acked order kept, no offset meaning two things, nothing a consumer saw that is gone."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_load import (
    FixedNode,
    Load,
    bootstrap,
    cluster,
    create_topic,
    final_read,
    leader_of,
    replica_views,
)
from lab.history import History
from poison import RawClient, batch
from test_cluster_controller import wait_for

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import BatchBuilder, iter_records

TOPIC = "failover"
PARTITIONS = 3
ROUNDS = 3
PAUSE_S = 4.0  # SIGSTOP long enough for several election timeouts
PID = 4242  # the raw idempotent producer's id (any id is accepted at first)


def _detail(nodes: list[FixedNode]) -> str:
    return "\n".join(f"node {n.node_id}: "
                     f"{[replica_views([n], TOPIC, p)[0] for p in range(PARTITIONS)]}"
                     f"\n{n.tail(8)}" for n in nodes)


class StaleProbe:
    """A produce and a fetch queued on the paused old leader's Kafka port while it sleeps, so
    they are the first things it handles when it wakes (before it hears of the new term): the
    produce must not be acknowledged, and what the fetch returns is recorded as observed."""

    def __init__(self, node: FixedNode, partition: int, rnd: int, history: History) -> None:
        self.partition = partition
        self.history = history
        self.rid = f"stale-{rnd}-"
        self.produced: Any = None
        self.fetched: Any = None
        self.errors: list[BaseException] = []
        self._clients = [RawClient(node.kafka, timeout=30), RawClient(node.kafka, timeout=30)]
        history.attempt(f"{self.rid}0", producer=f"stale-{rnd}")
        self._threads = [threading.Thread(target=self._produce),
                         threading.Thread(target=self._fetch)]
        for t in self._threads:
            t.start()

    def _produce(self) -> None:
        try:
            self.produced = self._clients[0].produce(TOPIC, self.partition,
                                                     batch(1, value=self.rid.encode()))
        except BaseException as exc:
            self.errors.append(exc)

    def _fetch(self) -> None:
        try:
            self.fetched = self._clients[1].fetch(TOPIC, self.partition, 0)
        except BaseException as exc:
            self.errors.append(exc)

    def finish(self) -> tuple[int, int, int]:
        """Join; record the outcome; -> (the produce's and the fetch's error codes, how many
        records the fetch read)."""
        for t in self._threads:
            t.join(40)
        for c in self._clients:
            c.sock.close()
        assert not self.errors, self.errors
        assert self.produced is not None and self.fetched is not None
        rid = f"{self.rid}0"
        if self.produced.error_code == ErrorCode.NONE:
            self.history.acked(rid, self.partition, self.produced.base_offset)
        else:
            self.history.unknown(rid)  # refused, or appended uncommitted and then cut away
        read = 0
        if self.fetched.error_code == ErrorCode.NONE:
            buf = bytes(self.fetched.records or b"")
            for pos, _ in iter_batches(buf):
                for r in iter_records(buf, pos, verify_crc=False):
                    self.history.observed(self.partition, r.offset, (r.value or b"").decode(),
                                          consumer="stale-probe")
                    read += 1
        return int(self.produced.error_code), int(self.fetched.error_code), read


def _caught_up(nodes: list[FixedNode], node: FixedNode) -> bool | None:
    """`node`'s replicas follow and have at least what their leaders had when asked."""
    for p in range(PARTITIONS):
        lead = leader_of(nodes, TOPIC, p)
        if lead is None:
            return None
        views = replica_views([lead[0], node], TOPIC, p)
        if views[0] is None or views[1] is None or views[1]["log_end"] < views[0]["log_end"]:
            return None
    return True


def _all_equal(nodes: list[FixedNode]) -> bool | None:
    for p in range(PARTITIONS):
        views = replica_views(nodes, TOPIC, p)
        if any(v is None for v in views) or len({v["log_end"] for v in views if v}) != 1:
            return None
    return True


def _round(nodes: list[FixedNode], load: Load, history: History, fault: str, rnd: int
           ) -> list[str]:
    """One fault of the node leading partition `rnd % PARTITIONS`, its recovery; -> figures."""
    p = rnd % PARTITIONS
    detail = lambda: f"{load.errors[-5:]}\n{_detail(nodes)}"  # noqa: E731
    victim, term = wait_for(f"round {rnd}: a leader of partition {p}",
                            lambda: leader_of(nodes, TOPIC, p), 30, detail)
    rest = [n for n in nodes if n is not victim]
    at = time.monotonic()
    if fault == "sigkill":
        victim.kill_group()
    else:
        os.killpg(victim.pgid, signal.SIGSTOP)
    new, _ = wait_for(f"round {rnd}: a new leader of partition {p}",
                      lambda: leader_of(rest, TOPIC, p, term), 30, detail)
    elected = time.monotonic() - at
    acked_at = wait_for(f"round {rnd}: an ack on partition {p} after the fault",
                        lambda: load.first_ack_after(p, at), 30, detail)
    figures = [f"round {rnd} {fault} partition {p}: leader {victim.node_id} -> {new.node_id}, "
               f"elected after {elected:.2f} s, produce acked {acked_at - at:.2f} s after "
               f"the fault"]
    if fault == "sigkill":
        victim.spawn()
        victim.ready()
    else:
        probe = StaleProbe(victim, p, rnd, history)
        left = PAUSE_S - (time.monotonic() - at)
        if left > 0:
            time.sleep(left)  # the fault's length, not a wait for a condition
        os.killpg(victim.pgid, signal.SIGCONT)
        code, fetch_code, read = probe.finish()
        figures.append(f"round {rnd}: the woken old leader answered the queued produce with "
                       f"error {code}, the fetch with error {fetch_code} and {read} records")
        assert code != ErrorCode.NONE, "the old leader acknowledged a write"
    wait_for(f"round {rnd}: node {victim.node_id} following and caught up",
             lambda: _caught_up(nodes, victim), 45, detail)

    def stepped_down() -> bool | None:
        v = replica_views([victim], TOPIC, p)[0]
        return (v is not None and not (v["serves"] and v["leader"] == victim.node_id
                                      and v["term"] <= term)) or None

    wait_for(f"round {rnd}: node {victim.node_id} no longer leads partition {p} in its old "
             f"term", stepped_down, 30, detail)
    return figures


@pytest.mark.timeout(150)
@pytest.mark.parametrize("fault", ["sigkill", "sigstop"])
def test_failover_under_load(tmp_path: Path, fault: str) -> None:
    with cluster(tmp_path) as nodes:
        create_topic(nodes, TOPIC, PARTITIONS)
        for p in range(PARTITIONS):
            wait_for(f"a leader of partition {p}", lambda p=p: leader_of(nodes, TOPIC, p), 30,
                     lambda: _detail(nodes))
        history = History()
        load = Load(bootstrap(nodes), TOPIC, PARTITIONS, history)
        load.start()
        figures: list[str] = []
        try:
            wait_for("records acked before the first fault", lambda: load.acked_count() > 200
                     or None, 30, lambda: f"{load.errors[-5:]}\n{_detail(nodes)}")
            for rnd in range(ROUNDS):
                figures += _round(nodes, load, history, fault, rnd)
        finally:
            left = load.stop()
        acked = load.acked_count()
        for line in figures:
            print(line)
        print(f"{fault}: {load.sent} sent, {acked} acked with an offset, {len(load.implicit)} "
              f"without (implicit acks), {len(load.errors)} delivery errors, {load.observed} "
              f"observed by the consumer")
        assert left == 0, f"{left} records never answered: {load.errors[-5:]}"
        wait_for("every replica equal at the end", lambda: _all_equal(nodes), 30,
                 lambda: _detail(nodes))
        got = final_read(bootstrap(nodes), TOPIC, PARTITIONS, history)
        present = {rid for records in got.values() for _o, rid in records}
        assert not [rid for rid in load.implicit if rid not in present], (
            "acknowledged (implicitly, without an offset) but not read")
        report = history.check(idempotent=True)
        print(report.summary())
        report.assert_ok()
        assert report.counts["acked"] == acked
        assert load.errors == [], load.errors[:5]
        # No replica took a fault for a disk failure (a flush overtaken by a suffix cut did).
        for node in nodes:
            assert '"flush_failed"' not in node.log_path.read_text(errors="replace"), node.tail()


def _idempotent_batch(seq: int, n: int, value: bytes) -> bytes:
    builder = BatchBuilder(producer_id=PID, producer_epoch=0, base_sequence=seq)
    for i in range(n):
        builder.append(value + b"%d" % i, key=None, timestamp=1_700_000_000_000 + i)
    return builder.build()


def _produce(node: FixedNode, topic: str, records: bytes) -> tuple[int, int]:
    client = RawClient(node.kafka)
    try:
        res = client.produce(topic, 0, records)
    finally:
        client.sock.close()
    assert res is not None
    return int(res.error_code), int(res.base_offset)


def _read(node: FixedNode, topic: str) -> list[tuple[int, bytes]]:
    client = RawClient(node.kafka)
    try:
        got = client.fetch(topic, 0, 0)
    finally:
        client.sock.close()
    assert got.error_code == ErrorCode.NONE, got
    buf = bytes(got.records or b"")
    return [(r.offset, r.value or b"") for pos, _ in iter_batches(buf)
            for r in iter_records(buf, pos, verify_crc=False)]


def _views_written_since(nodes: list[FixedNode], since: float) -> bool:
    """Every replica view file of every node (`cluster/replicas-core<N>.json`, rewritten
    atomically every 0.25 s while the node runs) was written at or after `since`."""
    for node in nodes:
        for core in range(node.cores):
            path = node.data_dir / "cluster" / f"replicas-core{core}.json"
            try:
                if path.stat().st_mtime < since:
                    return False
            except FileNotFoundError:
                return False
    return True


@pytest.mark.timeout(150)
def test_idempotent_retries_after_failover_and_full_restart_are_deduplicated(
        tmp_path: Path) -> None:
    """An idempotent producer's retry (same producer id, epoch, sequences) reaching the new
    leader after its leader died, or any leader after the whole cluster restarted on its data,
    is answered with the original offsets and stored once: each replica's producer state holds
    what it replicated, and what its log's tail says after a restart."""
    topic = "dedupe"
    with cluster(tmp_path) as nodes:
        create_topic(nodes, topic, 1)
        first, term = wait_for("a leader", lambda: leader_of(nodes, topic, 0), 30,
                               lambda: _detail(nodes))
        one, two = _idempotent_batch(0, 3, b"a"), _idempotent_batch(3, 2, b"b")
        assert _produce(first, topic, one) == (ErrorCode.NONE, 0)
        assert _produce(first, topic, two) == (ErrorCode.NONE, 3)
        want = [(i, b"a%d" % i) for i in range(3)] + [(3 + i, b"b%d" % i) for i in range(2)]
        assert _read(first, topic) == want

        first.kill_group()
        rest = [n for n in nodes if n is not first]
        new, term = wait_for("a new leader", lambda: leader_of(rest, topic, 0, term), 30,
                             lambda: _detail(nodes))
        # Both retried on the new leader: the originals' offsets, nothing stored twice.
        assert _produce(new, topic, one) == (ErrorCode.NONE, 0)
        assert _produce(new, topic, two) == (ErrorCode.NONE, 3)
        # The next sequence is taken, one beyond it is out of order.
        three = _idempotent_batch(5, 1, b"c")
        assert _produce(new, topic, three) == (ErrorCode.NONE, 5)
        assert _produce(new, topic, _idempotent_batch(7, 1, b"x"))[0] == \
            ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        want.append((5, b"c0"))
        assert _read(new, topic) == want

        # Every node stopped, then started again on its data: whoever leads rebuilt the
        # producer state from its log.
        first.spawn()
        first.ready()
        for node in rest:
            node.stop()
        first.stop()
        restarted = time.time()  # wall clock, as file modification times are
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        # The view files outlive the processes: until each node has rewritten its own, they
        # still agree on the leader from before the stop, which may not lead (yet) now.
        leader, _ = wait_for(
            "a leader after the restart, in views written since",
            lambda: leader_of(nodes, topic, 0) if _views_written_since(nodes, restarted)
            else None, 45, lambda: _detail(nodes))
        for batch_, base in ((one, 0), (two, 3), (three, 5)):
            assert _produce(leader, topic, batch_) == (ErrorCode.NONE, base)
        assert _read(leader, topic) == want
