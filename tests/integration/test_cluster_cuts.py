"""Failover under load with a partition leader cut off from the other nodes (issue 14): three
real nodes, each in a network namespace of its own (tests/integration/lab/netns.py: a private
/24 behind an `unreachable` route in the root namespace, links cut by `tc` drop filters), and
the clients in a fourth namespace, so a cut between nodes leaves every node reachable from the
clients. An idempotent acks=all confluent-kafka producer writes unique ids to an RF=3 topic
while a consumer (assigned, no group) reads them (`cluster_load.Load`, recording into a
`lab.History`).

Each round cuts the node leading one partition off from the two other nodes: both ways, then
only its packets to them (it hears them), then only theirs to it (they hear it, it hears
nothing). The two others elect a leader (printed: the time until one serves, and until a record
produced after the cut is acknowledged). While cut off, the old leader is asked directly on its
Kafka port, as a client that still talks to it would: a produce it gets must not be
acknowledged, and what it serves to fetches is recorded as observed (so anything it showed that
the majority does not finally have is a PHANTOM or INCONSISTENT_OFFSET for the checker). After
the heal it rejoins, truncates what it had not committed and catches up; leadership may then
return to it (its preferred replica), so no round assumes a fixed leader. At the end every
partition is read in full and the History checks every acknowledged write against it.

A one-way cut here drops IP packets one way, which is not a one-way cut of messages: TCP needs
the other direction for its handshake and ACKs, so the connections between the cut-off node
and the others carry data only until TCP gives up on them, and no new one opens (the proxy's
`cut_one_way`, which terminates TCP on both sides, is the message-level kind).

Why namespaces and not the FaultProxy: the nodes learn each other's RPC addresses from the
controller (what each advertises), so a proxy on every inter-node link would also need every
node to advertise, per peer, a different address; a namespace cut drops packets in the kernel
whatever address a node dialled, the Kafka clients keep their direct path, and the drop
counters prove the cut was hit. Order of teardown: clients, then nodes, then the lab."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster_load import (
    FixedNode,
    Load,
    bootstrap,
    create_topic,
    final_read,
    leader_of,
    replica_views,
)
from lab.history import History
from lab.netns import NetnsLab, require_netns
from poison import RawClient, batch
from test_cluster_controller import agreed, wait_for

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.record_batch import iter_batches
from redshank.protocol.records import iter_records

TOPIC = "cuts"
PARTITIONS = 3
KAFKA_PORT = 9092
RPC_PORT = 7000
CLIENTS = 4  # the lab node the clients live in
FAULTS = ("both ways", "leader to peers", "peers to leader")
HOLD_S = 5.0  # a cut lasts at least this long (election timeouts are 1-2 s)


class NsNode(FixedNode):
    """`redshank start` inside lab node `node_id`, on the lab address (fixed ports, so a node
    is the same after a restart)."""

    def __init__(self, lab: NetnsLab, data_dir: Path, node_id: int) -> None:
        super().__init__(data_dir, node_id, KAFKA_PORT, RPC_PORT, [RPC_PORT] * 3)
        self.lab = lab
        self.kafka = f"{lab.addr(node_id)}:{KAFKA_PORT}"

    def spawn(self) -> None:
        seeds = ",".join(f"{self.lab.addr(n)}:{RPC_PORT}" for n in (1, 2, 3))
        addr = self.lab.addr(self.node_id)
        with open(self.log_path, "ab") as log:
            self.proc = self.lab.run(self.node_id, [
                sys.executable, "-m", "redshank.tools.cli", "start", "--node-id",
                str(self.node_id), "--kafka-addr", f"{addr}:{KAFKA_PORT}", "--data-dir",
                str(self.data_dir), "--cores", str(self.cores), "--no-pin",
                "--admin-addr", "none", "--rpc-addr",
                f"{addr}:{RPC_PORT}", "--seeds", seeds],
                stdout=subprocess.PIPE, stderr=log, env=os.environ)


def _detail(nodes: list[NsNode]) -> str:
    return "\n".join(f"node {n.node_id}: "
                     f"{[replica_views([n], TOPIC, p)[0] for p in range(PARTITIONS)]}"
                     f"\n{n.tail(8)}" for n in nodes)


def _caught_up(nodes: list[NsNode], node: NsNode) -> bool | None:
    """Every partition has a leader all agree on, and `node` has at least its log."""
    for p in range(PARTITIONS):
        lead = leader_of(nodes, TOPIC, p)  # type: ignore[arg-type]
        if lead is None:
            return None
        views = replica_views([lead[0], node], TOPIC, p)
        if views[0] is None or views[1] is None or views[1]["log_end"] < views[0]["log_end"]:
            return None
    return True


def _all_equal(nodes: list[NsNode]) -> bool | None:
    for p in range(PARTITIONS):
        views = replica_views(nodes, TOPIC, p)  # type: ignore[arg-type]
        if any(v is None for v in views) or len({v["log_end"] for v in views if v}) != 1:
            return None
    return True


class CutProbe:
    """A client still talking to the cut-off old leader: one acks=all produce sent as the cut
    starts (answered only once the old leader gives up on it: it must not be acknowledged), and
    fetches from offset 0 every 0.3 s until `finish` (whatever they return is observed)."""

    def __init__(self, lab: NetnsLab, node: NsNode, partition: int, rnd: int,
                 history: History) -> None:
        self.partition = partition
        self.history = history
        self.rid = f"cut-{rnd}-"
        self.produced: Any = None
        self.fetch_codes: dict[int, int] = {}
        self.read = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        history.attempt(f"{self.rid}0", producer=f"cut-{rnd}")
        with lab.entered(CLIENTS):  # the sockets live with the clients
            self._clients = [RawClient(node.kafka, timeout=30), RawClient(node.kafka, timeout=5)]
        self._threads = [threading.Thread(target=self._produce, name="cut-produce"),
                         threading.Thread(target=self._fetch, name="cut-fetch")]
        for t in self._threads:
            t.start()

    def _produce(self) -> None:
        try:
            self.produced = self._clients[0].produce(TOPIC, self.partition,
                                                     batch(1, value=self.rid.encode()))
        except BaseException as exc:
            self.errors.append(exc)

    def _fetch(self) -> None:
        while not self._stop.is_set():
            try:
                got = self._clients[1].fetch(TOPIC, self.partition, 0)
            except BaseException as exc:
                self.errors.append(exc)
                return
            code = int(got.error_code)
            self.fetch_codes[code] = self.fetch_codes.get(code, 0) + 1
            if code == ErrorCode.NONE:
                buf = bytes(got.records or b"")
                for pos, _ in iter_batches(buf):
                    for r in iter_records(buf, pos, verify_crc=False):
                        self.history.observed(self.partition, r.offset,
                                              (r.value or b"").decode(), consumer="cut-probe")
                        self.read += 1
            self._stop.wait(0.3)

    def answered(self) -> bool | None:
        return self.produced is not None or bool(self.errors) or None

    def close(self) -> None:
        """Stop fetching, join (the produce ends by its answer or its socket's timeout)."""
        self._stop.set()
        for t in self._threads:
            t.join(40)
        for c in self._clients:
            c.sock.close()

    def finish(self) -> int:
        """`close`, then record the produce's outcome; -> its error code."""
        self.close()
        assert not self.errors, self.errors
        assert self.produced is not None
        rid = f"{self.rid}0"
        if self.produced.error_code == ErrorCode.NONE:
            self.history.acked(rid, self.partition, self.produced.base_offset)
        else:
            self.history.unknown(rid)  # refused, or appended uncommitted (kept or cut away)
        return int(self.produced.error_code)


def _cut(lab: NetnsLab, victim: int, others: list[int], fault: str) -> Callable[[], int]:
    """Apply `fault` between `victim` and `others` (never the clients' node); -> how to read
    the drop counter that proves the cut was hit."""
    for n in others:
        if fault == "both ways":
            lab.cut(victim, n)
        elif fault == "leader to peers":
            lab.cut_one_way(victim, n)
        else:
            lab.cut_one_way(n, victim)
    if fault == "peers to leader":
        return lambda: sum(lab.dropped(n) for n in others)
    return lambda: lab.dropped(victim)


def _round(lab: NetnsLab, nodes: list[NsNode], load: Load, history: History, fault: str,
           rnd: int) -> list[str]:
    """Cut the node leading partition `rnd % PARTITIONS` off as `fault` says, probe it, heal,
    wait until it caught up; -> figures."""
    p = rnd % PARTITIONS
    detail = lambda: f"{load.errors[-5:]}\n{_detail(nodes)}"  # noqa: E731
    victim, term = wait_for(f"round {rnd}: a leader of partition {p}",
                            lambda: leader_of(nodes, TOPIC, p), 30,  # type: ignore[arg-type]
                            detail)
    rest = [n for n in nodes if n is not victim]
    assert isinstance(victim, NsNode)
    dropped_before = {n.node_id: lab.dropped(n.node_id) for n in nodes}
    drops = _cut(lab, victim.node_id, [n.node_id for n in rest], fault)
    at = time.monotonic()  # every filter in place: what is sent from now on is dropped
    before = sum(dropped_before[n.node_id] for n in rest) if fault == "peers to leader" \
        else dropped_before[victim.node_id]
    probe = CutProbe(lab, victim, p, rnd, history)
    try:
        new, new_term = wait_for(f"round {rnd} ({fault}): a new leader of partition {p}",
                                 lambda: leader_of(rest, TOPIC, p, term),  # type: ignore[arg-type]
                                 30, detail)
        elected = time.monotonic() - at
        acked_at = wait_for(f"round {rnd} ({fault}): an ack on partition {p} after the cut",
                            lambda: load.first_ack_after(p, at), 30, detail)
        wait_for(f"round {rnd} ({fault}): the cut-off leader answering the produce", probe.answered,
                 40, detail)
        left = HOLD_S - (time.monotonic() - at)
        if left > 0:
            time.sleep(left)  # the cut's length, not a wait for a condition
        code = probe.finish()
        hit = drops() - before
        view = replica_views([victim], TOPIC, p)[0]
    finally:
        lab.heal()
        probe.close()
    held = time.monotonic() - at
    figures = [
        f"round {rnd} cut {fault}, partition {p}: leader {victim.node_id} (term {term}) -> "
        f"{new.node_id} (term {new_term}): serving {elected:.2f} s after the cut, a produce acked "
        f"{acked_at - at:.2f} s after it; cut held {held:.1f} s, {hit} packets dropped",
        f"round {rnd}: the cut-off old leader answered a produce with error {code} and "
        f"{sum(probe.fetch_codes.values())} fetches with {probe.fetch_codes} "
        f"({probe.read} records); its view before the heal: {view}"]
    assert code != ErrorCode.NONE, "the cut-off old leader acknowledged a write"
    assert hit > 0, "no packet was dropped: the cut was not between the nodes"
    wait_for(f"round {rnd}: node {victim.node_id} following and caught up",
             lambda: _caught_up(nodes, victim), 45, detail)

    def stepped_down() -> bool | None:
        v = replica_views([victim], TOPIC, p)[0]
        return (v is not None and not (v["serves"] and v["leader"] == victim.node_id
                                      and v["term"] <= term)) or None

    wait_for(f"round {rnd}: node {victim.node_id} no longer leads partition {p} in its old "
             f"term", stepped_down, 30, detail)
    figures.append(f"round {rnd}: node {victim.node_id} caught up "
                   f"{time.monotonic() - at - held:.2f} s after the heal")
    return figures


def _stop_clients(load: Load) -> int:
    """Stop the load and end librdkafka's threads (inside the clients' namespace) before the
    lab goes; -> records left unanswered."""
    try:
        left = load.stop()
    finally:
        if len(load.producer) > 0:
            load.producer.purge()
        load.producer.close()
    return left


def _run(lab: NetnsLab, tmp_path: Path) -> None:
    nodes = [NsNode(lab, tmp_path / f"node-{n}", n) for n in (1, 2, 3)]
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.ready()
        wait_for("three nodes agreeing on one cluster",
                 lambda: agreed(nodes, 3), 30)  # type: ignore[arg-type]
        history = History()
        with lab.entered(CLIENTS):  # librdkafka's threads (and the load's) live there
            create_topic(nodes, TOPIC, PARTITIONS)  # type: ignore[arg-type]
            for p in range(PARTITIONS):
                wait_for(f"a leader of partition {p}",
                         lambda p=p: leader_of(nodes, TOPIC, p),  # type: ignore[arg-type]
                         30, lambda: _detail(nodes))
            load = Load(bootstrap(nodes), TOPIC, PARTITIONS, history)  # type: ignore[arg-type]
            load.start()
        figures: list[str] = []
        try:
            wait_for("records acked before the first cut", lambda: load.acked_count() > 200
                     or None, 30, lambda: f"{load.errors[-5:]}\n{_detail(nodes)}")
            for rnd, fault in enumerate(FAULTS):
                figures += _round(lab, nodes, load, history, fault, rnd)
        finally:
            left = _stop_clients(load)
        acked = load.acked_count()
        sent, implicit, errors, observed = (load.sent, list(load.implicit), list(load.errors),
                                            load.observed)
        for line in figures:
            print(line)
        print(f"cuts: {sent} sent, {acked} acked with an offset, {len(implicit)} without "
              f"(implicit acks), {len(errors)} delivery errors, {observed} observed by the "
              f"consumer")
        assert left == 0, f"{left} records never answered: {errors[-5:]}"
        wait_for("every replica equal at the end", lambda: _all_equal(nodes), 30,
                 lambda: _detail(nodes))
        with lab.entered(CLIENTS):
            got = final_read(bootstrap(nodes), TOPIC, PARTITIONS, history)  # type: ignore[arg-type]
        gc.collect()
        leads = [leader_of(nodes, TOPIC, p) for p in range(PARTITIONS)]  # type: ignore[arg-type]
        print("final leaders: " + ", ".join(
            f"partition {p}: node {lead[0].node_id}" if lead else f"partition {p}: moving"
            for p, lead in enumerate(leads)))
        present = {rid for records in got.values() for _o, rid in records}
        assert not [rid for rid in implicit if rid not in present], (
            "acknowledged (implicitly, without an offset) but not read")
        report = history.check(idempotent=True)
        print(report.summary())
        report.assert_ok()
        assert report.counts["acked"] == acked
        assert errors == [], errors[:5]
        for node in nodes:
            assert '"flush_failed"' not in node.log_path.read_text(errors="replace"), node.tail()
    finally:
        codes = {node.node_id: node.stop() for node in nodes}  # the nodes stop before the lab
        print(f"exit codes {codes}")


@pytest.mark.timeout(170)
def test_partition_leader_cut_off_both_ways_and_one_way_under_load(tmp_path: Path) -> None:
    require_netns()
    with NetnsLab(4) as lab:
        _run(lab, tmp_path)
