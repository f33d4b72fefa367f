"""Invariant checkers fed by the simulator on every run.

Each check appends a human-readable violation instead of raising, so a failing seed reports all it
broke. Must not drive the simulation: it only observes.

Checked: election safety, log matching, leader completeness, state-machine safety, durable
vote, joint quorum rules (a commit needs a majority of both halves; at most one uncommitted
configuration on a leader; learners never vote), prevote side-effect freedom, TIMEOUT_NOW only to
a caught-up target, every acks=all ack majority-fsynced, high watermark monotonic, no acked=all
entry lost, no entry visible before it is fsynced on a majority, recovery keeps every durable
committed entry and the durable term and vote.

Kafka (over the storage logs the partitions write): every acks=all produce is found at its
acknowledged offset with its records in the final log of every replica; no offset holds two
different acknowledged batches; the high watermark a ready leader serves never goes below one
an earlier term's leader served; what a consumer read below the high watermark is still there,
unchanged, at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redshank.cluster.raft import quorum
from redshank.cluster.raft.sim.disk import Durable
from redshank.cluster.raft.types import Config, Entry, EntryKind, HardState, Index, NodeId, Term


def _key(e: Entry) -> tuple[int, int, int, bytes, Config | None]:
    return (e.term, e.index, int(e.kind), bytes(e.batch), e.config)


class Checker:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.leaders: dict[Term, NodeId] = {}
        self.committed: dict[Index, tuple[int, int, int, bytes, Config | None]] = {}
        self.acked_all: dict[int, tuple[bytes, ...]] = {}  # Kafka base offset -> records
        self.acked_all_index: dict[int, tuple[Index, Term]] = {}  # request id -> entry
        self.commit_term: dict[Index, Term] = {}  # the lowest term whose leader committed it
        self.served_hwm: dict[Term, int] = {}
        self.kafka_served: dict[int, int] = {}  # term -> highest Kafka high watermark served
        self.consumed: dict[int, bytes] = {}  # Kafka offset -> record a consumer read
        self.reads = 0
        self.now = 0.0

    def fail(self, what: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(f"t={self.now:.0f}ms {what}")

    # ---- elections --------------------------------------------------------------------------

    def became_leader(self, node: NodeId, term: Term, log: Sequence[Entry]) -> None:
        other = self.leaders.setdefault(term, node)
        if other != node:
            self.fail(f"election safety: {other} and {node} both leaders of term {term}")
        # Leader completeness: an entry committed in an earlier term is in the new leader's log.
        # (A stale candidate of an older term may still win; that is allowed.)
        for idx, key in self.committed.items():
            if self.commit_term.get(idx, term) >= term:
                continue
            if idx > len(log) or _key(log[idx - 1]) != key:
                self.fail(f"leader completeness: leader {node} term {term} lacks committed {idx}")
                return

    def vote_sent(self, node: NodeId, term: Term, candidate: NodeId, disk: Durable,
                  config: Config) -> None:
        hs = disk.hard_state
        if hs.term < term or (hs.term == term and hs.vote != candidate):
            self.fail(f"durable vote: {node} granted {candidate} in term {term} but disk has "
                      f"term {hs.term} vote {hs.vote}")
        if node not in config.all_voters():
            self.fail(f"learner voted: {node} granted {candidate} in term {term}")

    def timeout_now_sent(self, node: NodeId, target: NodeId, term: Term, last: Index,
                         last_term: Term, target_disk: Durable) -> None:
        """Leadership goes only to a target that has the leader's whole log (Redpanda #2606)."""
        if target_disk.hard_state.term > term:
            return  # a newer leader may have rewritten the target's log since it acknowledged
        if last and not target_disk.has(last, last_term):
            self.fail(f"transfer to a lagging target: {node} sent TIMEOUT_NOW to {target} "
                      f"lacking {last_term}/{last}")

    def prevote_handled(self, node: NodeId, before: tuple[int, int], after: tuple[int, int],
                        request: bool, became_candidate: bool) -> None:
        if before == after or (not request and became_candidate):
            return
        if not request and after[0] > before[0] and after[1] == 0:
            return  # a rejection carried a newer term: adopting it is not a prevote effect
        self.fail(f"prevote side effect: {node} term/vote {before} -> {after}")

    # ---- commit and visibility --------------------------------------------------------------

    def leader_committed(self, node: NodeId, term: Term, log: Sequence[Entry], old: Index,
                         new: Index, config: Config, disks: Mapping[NodeId, Durable]) -> None:
        e = log[new - 1]
        holders = {n: True for n, d in disks.items() if d.has(new, e.term)}
        if quorum.joint_vote_result(config, holders) != quorum.VoteResult.WON:
            self.fail(f"visible before majority: leader {node} term {term} committed {new} "
                      f"fsynced only on {sorted(holders)} of {config.describe()}")
        uncommitted = sum(1 for x in log[new:] if x.kind == EntryKind.CONFIG)
        if uncommitted > 1:
            self.fail(f"joint quorum rules: leader {node} has {uncommitted} uncommitted configs")
        for i in range(old + 1, new + 1):
            self._commit(node, log[i - 1])
            idx = Index(i)
            self.commit_term[idx] = min(self.commit_term.get(idx, term), term)

    def _commit(self, node: NodeId, e: Entry) -> None:
        key = self.committed.setdefault(e.index, _key(e))
        if key != _key(e):
            self.fail(f"state machine safety: {node} commits {e.describe()} at {e.index}, "
                      f"earlier {key[:2]}")

    def applied(self, node: NodeId, entries: Sequence[Entry]) -> None:
        for e in entries:
            self._commit(node, e)

    def hwm(self, node: NodeId, old: int, new: int) -> None:
        if new < old:
            self.fail(f"high watermark moved back on {node}: {old} -> {new}")

    def leader_ready(self, node: NodeId, term: Term, hwm: int) -> None:
        """A ready leader serves `hwm`: never below what a leader of an earlier term served
        (Redpanda #5025: serving before an entry of the new term commits breaks this)."""
        earlier = max((h for t, h in self.served_hwm.items() if t < term), default=0)
        if hwm < earlier:
            self.fail(f"high watermark: leader {node} term {term} serves {hwm} < {earlier}")
        self.served_hwm[term] = max(self.served_hwm.get(term, 0), hwm)

    # ---- acks -------------------------------------------------------------------------------

    def acked_all_entry(self, req: int, index: Index, term: Term, offset: int,
                        records: tuple[bytes, ...], config: Config,
                        disks: Mapping[NodeId, Durable]) -> None:
        holders = {n: True for n, d in disks.items() if d.has(index, term)}
        if quorum.joint_vote_result(config, holders) != quorum.VoteResult.WON:
            self.fail(f"acks=all ack for {req} at {index} not majority-fsynced: {sorted(holders)}")
        prev = self.acked_all.setdefault(offset, records)
        if prev != records:
            self.fail(f"offset {offset} acked twice with different records")
        self.acked_all_index[req] = (index, term)

    # ---- Kafka ------------------------------------------------------------------------------

    def kafka_hwm(self, node: NodeId, term: Term, hw: int, ready: bool) -> None:
        """A ready leader serves Kafka high watermark `hw`: never below what a leader of an
        earlier term served."""
        if not ready:
            return
        earlier = max((h for t, h in self.kafka_served.items() if t < term), default=0)
        if hw < earlier:
            self.fail(f"kafka high watermark backwards: leader {node} term {term} serves {hw} "
                      f"< {earlier} served earlier")
        self.kafka_served[term] = max(self.kafka_served.get(term, 0), hw)

    def consumer_read(self, node: NodeId, records: Mapping[int, bytes]) -> None:
        """A consumer fetched `records` (offset -> value) below a ready leader's high
        watermark: they must never change or disappear."""
        self.reads += 1
        for off, value in records.items():
            prev = self.consumed.setdefault(off, value)
            if prev != value:
                self.fail(f"consumer saw offset {off} change: {prev!r} -> {value!r} "
                          f"(read from {node})")
                return

    def recovered(self, node: NodeId, hs: HardState, durable: Durable,
                  terms: Mapping[int, int], first: int) -> None:
        """A restart recovered `hs` and the log entries `terms` (index -> term, from `first`)
        from the files: what was fsynced before the crash must all be there."""
        d = durable.hard_state
        if hs.term < d.term or (hs.term == d.term and hs.vote != d.vote):
            self.fail(f"recovery lost the vote: {node} recovered term {hs.term} vote {hs.vote}, "
                      f"fsynced term {d.term} vote {d.vote}")
        last = first - 1 + len(terms)
        if last < min(d.commit, len(durable.terms)):
            self.fail(f"recovery lost committed entries: {node} recovered up to {last}, "
                      f"fsynced commit {d.commit}")
            return
        for i in range(first, min(d.commit, len(durable.terms)) + 1):
            if terms[i] != durable.terms[i - 1]:
                self.fail(f"recovery changed committed entry {i} on {node}: term "
                          f"{durable.terms[i - 1]} -> {terms[i]}")
                return

    def kafka_final(self, node: NodeId, records: Mapping[int, bytes]) -> None:
        """`records`: the committed Kafka log of `node` at the end (offset -> value)."""
        for off, values in self.acked_all.items():
            got = tuple(records.get(off + i, b"") for i in range(len(values)))
            if got != values:
                self.fail(f"kafka: acked=all batch at offset {off} lost or changed on {node}: "
                          f"{values} -> {got}")
                break
        for off, value in self.consumed.items():
            if records.get(off) != value:
                self.fail(f"kafka: offset {off} a consumer read as {value!r} is "
                          f"{records.get(off)!r} on {node}")
                break

    def committed_entry(self, index: int) -> Entry:
        """The committed entry at `index` (for a replica whose log starts after it)."""
        term, idx, kind, batch, config = self.committed[Index(index)]
        return Entry(Term(term), Index(idx), EntryKind(kind), batch, config)

    # ---- end of run -------------------------------------------------------------------------

    def final(self, logs: Mapping[NodeId, Sequence[Entry]], commits: Mapping[NodeId, Index],
              offsets: Mapping[NodeId, Mapping[int, bytes]]) -> None:
        self.log_matching(logs)
        for node, log in logs.items():
            for idx, term in self.acked_all_index.values():
                if idx > commits[node] or log[idx - 1].term != term:
                    self.fail(f"acked=all entry {term}/{idx} lost or uncommitted on {node}")
                    break
            self.kafka_final(node, offsets[node])

    def log_matching(self, logs: Mapping[NodeId, Sequence[Entry]]) -> None:
        nodes = sorted(logs)
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                la, lb = logs[a], logs[b]
                n = min(len(la), len(lb))
                k = n - 1
                while k >= 0 and la[k].term != lb[k].term:
                    k -= 1
                if k >= 0 and [_key(e) for e in la[: k + 1]] != [_key(e) for e in lb[: k + 1]]:
                    self.fail(f"log matching: {a} and {b} agree at {k + 1} but differ before")
