"""Interaction transcripts: etcd-style data-driven scripts that drive Raft nodes step by step.

A transcript file is a sequence of blocks:

    # comments
    command arg key=value ...
    ----
    expected output
    <blank line>

`run_file(path, rewrite)` replays every command and compares outputs; with `rewrite` it writes the
actual outputs back so changes are reviewed as diffs (tests: `REDSHANK_REWRITE=1`). Commands:

    add-nodes N [voters=1,2,3] [learners=4] [prevote=false] [checkquorum=false]
              [priorities=1:5,2:1] [election=10] [sync=manual] [batcher=BYTES]
              [heartbeats=node]
    produce ID acks=all|1|0 record... | replicate ID | offsets ID
    flush-heartbeats ID        send the node-level heartbeat messages collected so far
    campaign ID | tick ID [N] | tick-election ID | tick-heartbeat ID
    stabilize [ID...]          process Readys and deliver messages until nothing moves
    process-ready ID...        one Ready each (persisted and synced at once)
    deliver-msgs ID...         deliver queued messages addressed to ID
    propose ID text...         one DATA entry: a Kafka batch with one record per word
    propose-conf-change ID voters=.. [learners=..]
    transfer-leadership from=ID to=ID
    partition A,B C,D | partition-oneway from=A,B to=C | heal
    crash ID [keep=unsynced] | restart ID | sync ID
    status | log ID

Must not know the random simulator's fault schedule; it shares only the disk model.
"""

from __future__ import annotations

import random
import shlex
from dataclasses import field

from redshank.cluster.raft.batches import batch_of, values_of
from redshank.cluster.raft.heartbeat_manager import GroupId, HeartbeatManager
from redshank.cluster.raft.log import MemoryLog
from redshank.cluster.raft.offset_translator import Offset, OffsetTranslator
from redshank.cluster.raft.raft import RaftConfig, RaftCore
from redshank.cluster.raft.replicate_batcher import Acks, ReplicateBatcher, ReplicateRequest
from redshank.cluster.raft.replicate_entries_stm import ReplicateEntriesStm, ReplicateResult
from redshank.cluster.raft.sim.disk import SimDisk
from redshank.cluster.raft.types import (
    Config,
    Index,
    Message,
    NodeId,
    PersistMark,
    ProposeError,
    Role,
)
from redshank.protocol.fast_dataclass import dataclass


@dataclass(slots=True)
class _Node:
    id: NodeId
    core: RaftCore
    disk: SimDisk
    cfg: RaftConfig
    bootstrap: Config
    up: bool = True
    awaiting: list[Message] = field(default_factory=list)  # sent after the next sync
    batcher: ReplicateBatcher = field(default_factory=ReplicateBatcher)
    stm: ReplicateEntriesStm = field(default_factory=ReplicateEntriesStm)
    translator: OffsetTranslator = field(default_factory=OffsetTranslator)
    hb: HeartbeatManager | None = None  # node-level heartbeats when add-nodes heartbeats=node


def _ids(text: str) -> frozenset[NodeId]:
    return frozenset(NodeId(int(x)) for x in text.split(",") if x)


class Interaction:
    def __init__(self) -> None:
        self.nodes: dict[NodeId, _Node] = {}
        self.queue: list[Message] = []
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        # Disks sync at once unless `manual-sync` is on (then `sync ID` does it).
        self.auto_sync = True
        self.next_request = 0
        self.marks: dict[NodeId, PersistMark] = {}  # the latest Ready of each node, to sync

    # ---- command dispatch -------------------------------------------------------------------

    def run(self, line: str) -> str:
        words = shlex.split(line)
        cmd, rest = words[0], words[1:]
        args = [w for w in rest if "=" not in w]
        kw = dict(w.split("=", 1) for w in rest if "=" in w)
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            return f"unknown command {cmd}"
        out: list[str] = handler(args, kw)
        return "\n".join(out) if out else "ok"

    def cmd_add_nodes(self, args: list[str], kw: dict[str, str]) -> list[str]:
        n = int(args[0])
        ids = [NodeId(i) for i in range(1, n + 1)]
        voters = _ids(kw["voters"]) if "voters" in kw else frozenset(ids)
        learners = _ids(kw.get("learners", ""))
        prio = {NodeId(int(a)): int(b) for a, b in
                (p.split(":") for p in kw.get("priorities", "").split(",") if p)}
        boot = Config(voters=voters, learners=learners)
        for i in ids:
            cfg = RaftConfig(id=i, rng=random.Random(i), election_ticks=int(kw.get("election", 10)),
                             prevote=kw.get("prevote", "true") == "true",
                             check_quorum=kw.get("checkquorum", "true") == "true", priorities=prio)
            disk = SimDisk()
            hb = HeartbeatManager(i) if kw.get("heartbeats") == "node" else None
            self.nodes[i] = _Node(i, RaftCore(cfg, MemoryLog(), disk.hard_state, boot), disk, cfg,
                                  boot, batcher=ReplicateBatcher(int(kw.get("batcher", 1 << 20))),
                                  hb=hb)
        self.auto_sync = kw.get("sync", "auto") == "auto"
        return self.cmd_status([], {})

    def cmd_campaign(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        node.core.campaign()
        return []

    def cmd_tick(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            node.core.tick()
        return []

    def cmd_tick_election(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        c = node.core
        n = (c.cfg.election_ticks if c.role == Role.LEADER else c.randomized_timeout)
        for _ in range(max(1, n - c.election_elapsed)):
            c.tick()
        return []

    def cmd_tick_heartbeat(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        for _ in range(node.cfg.heartbeat_ticks):
            node.core.tick()
        return []

    def cmd_propose(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        res = node.core.propose(batch_of(w.encode() for w in args[1:]))
        return [f"refused: {res.name}"] if isinstance(res, ProposeError) else [f"index {res}"]

    def cmd_produce(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        acks = {"all": Acks.ALL, "1": Acks.LEADER, "0": Acks.NONE}[kw["acks"]]
        self.next_request += 1
        req = ReplicateRequest(self.next_request, batch_of(w.encode() for w in args[1:]), acks)
        if not node.batcher.enqueue(req):
            return [f"request {req.id}: backpressure (units available {node.batcher.available})"]
        return [f"request {req.id} queued (units available {node.batcher.available})"]

    def cmd_replicate(self, args: list[str], kw: dict[str, str]) -> list[str]:
        """The batcher's flush: each queued request's batch becomes one entry."""
        node = self._node(args[0])
        out: list[str] = []
        while node.batcher.pending():
            req = node.batcher.take()
            base = Offset(self._next_offset(node))
            res = node.core.propose(req.batch)
            if isinstance(res, ProposeError):
                node.batcher.refuse(req)
                out.append(f"refused: {res.name}")
                break
            node.batcher.hold(res, req)
            out.append(f"append index {res}: request {req.id} base offset {base}")
            out += self._results(node.stm.appended(req, res, node.core.term, base))
        return out

    def cmd_offsets(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        c = node.core
        out = []
        for e in c.log.slice(Index(1), c.commit):
            for k, r in enumerate(values_of(e.batch)):
                out.append(f"offset {node.translator.to_kafka(e.index) + k}: {r.decode()} "
                           f"(index {e.index})")
        out.append(f"high watermark {node.translator.end_offset(c.commit)}")
        return out

    @staticmethod
    def _next_offset(node: _Node) -> int:
        """The translator covers what Readys handed out; add entries appended since."""
        c, tr = node.core, node.translator
        tail = c.log.slice(Index(len(tr) + 1), c.last_index())
        return tr.next_offset() + sum(e.span() for e in tail)

    @staticmethod
    def _results(results: list[ReplicateResult]) -> list[str]:
        names = {Acks.ALL: "all", Acks.LEADER: "1", Acks.NONE: "0"}
        out = []
        for r in results:
            what = f"offset {r.base_offset}" if r.error is None else f"error {r.error.name}"
            out.append(f"  ack request {r.id} acks={names[r.acks]} {what}")
        return out

    def _leader_acks(self, node: _Node, written: Index) -> list[str]:
        c = node.core
        if c.role != Role.LEADER:
            return self._results(node.stm.lost_leadership())
        node.batcher.handed_off(written)
        return (self._results(node.stm.written(written))
                + self._results(node.stm.committed(c.commit, c.log.term)))

    def cmd_flush_heartbeats(self, args: list[str], kw: dict[str, str]) -> list[str]:
        """One node-level message per peer carries every group's heartbeat (or response)."""
        node = self._node(args[0])
        assert node.hb is not None, "add-nodes ... heartbeats=node"
        before = node.hb.suppressed
        out = []
        for nb in node.hb.flush():
            beats = ", ".join(f"group {g}: {m.type.name} commit={m.commit}" for g, m in nb.beats)
            out.append(f"  node heartbeat {nb.src}->{nb.dst} [{beats}]")
            self.queue += [m for _g, m in nb.beats]
        if node.hb.suppressed > before:
            out.append(f"  suppressed {node.hb.suppressed - before} (appends carried the commit)")
        return out

    def cmd_propose_conf_change(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        res = node.core.propose_config(_ids(kw["voters"]), _ids(kw.get("learners", "")))
        return [f"refused: {res.name}"] if isinstance(res, ProposeError) else [f"index {res}"]

    def cmd_transfer_leadership(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(kw["from"])
        err = node.core.transfer_leadership(NodeId(int(kw["to"])))
        return [f"refused: {err.name}"] if err is not None else []

    def cmd_partition(self, args: list[str], kw: dict[str, str]) -> list[str]:
        groups = [_ids(a) for a in args]
        self.blocked = {(a, b) for g in groups for h in groups if g is not h for a in g for b in h}
        return [f"blocked {len(self.blocked)} links"]

    def cmd_partition_oneway(self, args: list[str], kw: dict[str, str]) -> list[str]:
        src, dst = _ids(kw["from"]), _ids(kw["to"])
        self.blocked |= {(a, b) for a in src for b in dst}
        return [f"blocked {len(self.blocked)} links"]

    def cmd_heal(self, args: list[str], kw: dict[str, str]) -> list[str]:
        self.blocked = set()
        return []

    def cmd_sync(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        return self._sync(node)

    def cmd_crash(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        # keep=unsynced: the page cache reached the disk; default: unsynced writes are lost.
        if kw.get("keep") == "unsynced":
            node.disk.sync()
        else:
            node.disk.lose_unsynced()
        node.up = False
        node.awaiting.clear()
        self.marks.pop(node.id, None)
        return [f"{node.id} crashed: disk log={len(node.disk.log)} "
                f"term={node.disk.hard_state.term} vote={node.disk.hard_state.vote}"]

    def cmd_restart(self, args: list[str], kw: dict[str, str]) -> list[str]:
        node = self._node(args[0])
        node.core = RaftCore(node.cfg, MemoryLog(node.disk.log), node.disk.hard_state,
                             node.bootstrap)
        node.batcher = ReplicateBatcher(node.batcher.max_bytes)
        node.stm = ReplicateEntriesStm()
        node.translator = OffsetTranslator()
        for e in node.disk.log:
            node.translator.append(e)
        node.up = True
        return self._status_line(node)

    def cmd_status(self, args: list[str], kw: dict[str, str]) -> list[str]:
        out: list[str] = []
        for node in self.nodes.values():
            out += self._status_line(node)
        return out

    def cmd_log(self, args: list[str], kw: dict[str, str]) -> list[str]:
        c = self._node(args[0]).core
        return [e.describe() for e in c.log.slice(Index(1), c.last_index())] or ["(empty)"]

    def cmd_process_ready(self, args: list[str], kw: dict[str, str]) -> list[str]:
        out: list[str] = []
        for a in args:
            out += self._ready(self._node(a))
        return out

    def cmd_deliver_msgs(self, args: list[str], kw: dict[str, str]) -> list[str]:
        out: list[str] = []
        for a in args:
            out += self._deliver(self._node(a))
        return out

    def cmd_stabilize(self, args: list[str], kw: dict[str, str]) -> list[str]:
        ids = [self._node(a).id for a in args] or list(self.nodes)
        out: list[str] = []
        for _ in range(200):
            moved = False
            for i in ids:
                node = self.nodes[i]
                if node.up and node.core.has_ready():
                    out += self._ready(node)
                    moved = True
            for i in ids:
                node = self.nodes[i]
                if any(m.dst == i for m in self.queue):
                    out += self._deliver(node)
                    moved = True
            if not moved:
                break
        return out

    # ---- mechanics --------------------------------------------------------------------------

    def _node(self, text: str) -> _Node:
        return self.nodes[NodeId(int(text))]

    def _status_line(self, node: _Node) -> list[str]:
        c = node.core
        if not node.up:
            return [f"{node.id}: down"]
        extra = f" transferee={c.lead_transferee}" if c.lead_transferee else ""
        if c.role == Role.LEADER:
            extra += f" ready={str(c.leader_ready()).lower()}"
        return [f"{node.id}: {c.role.name} term={c.term} vote={c.vote} lead={c.lead} "
                f"commit={c.commit} last={c.last_index()} {c.config.describe()}{extra}"]

    def _ready(self, node: _Node) -> list[str]:
        if not node.up or not node.core.has_ready():
            return []
        rd = node.core.ready()
        out = [f"> {node.id} handling Ready"]
        if rd.hard_state is not None:
            hs = rd.hard_state
            out.append(f"  HardState term={hs.term} vote={hs.vote} commit={hs.commit}")
        if rd.entries:
            out.append("  Entries: " + ", ".join(e.describe() for e in rd.entries))
        if rd.committed:
            out.append("  Committed: " + ", ".join(e.describe() for e in rd.committed))
        for n in rd.notices:
            out.append(f"  Notice {n.kind.name} term={n.term}"
                       + (f" index={n.index}" if n.index else "")
                       + (f" leader={n.leader}" if n.leader else ""))
        node.disk.write(rd.entries, rd.hard_state)
        early = rd.messages if node.hb is None else node.hb.collect(GroupId(0), rd.messages)
        for m in early:
            out.append("  send " + m.describe())
            self.queue.append(m)
        node.awaiting.extend(rd.messages_after_persist)
        self.marks[node.id] = rd.mark
        if rd.entries:
            node.translator.truncate(rd.entries[0].index)
            for e in rd.entries:
                node.translator.append(e)
        out += self._leader_acks(node, rd.mark.index)
        if self.auto_sync:
            out += self._sync(node)
        return out

    def _sync(self, node: _Node) -> list[str]:
        node.disk.sync()
        out: list[str] = []
        late, node.awaiting = node.awaiting, []
        for m in late:
            out.append("  send (after sync) " + m.describe())
            self.queue.append(m)
        mark = self.marks.pop(node.id, None)
        if mark is not None:
            node.core.on_persisted(mark)
        return out

    def _deliver(self, node: _Node) -> list[str]:
        mine = [m for m in self.queue if m.dst == node.id]
        self.queue = [m for m in self.queue if m.dst != node.id]
        out: list[str] = []
        for m in mine:
            if (m.src, m.dst) in self.blocked:
                out.append("  dropped " + m.describe())
                continue
            if not node.up:
                continue
            out.append("  recv " + m.describe())
            node.core.step(m)
        if out:
            out.insert(0, f"> {node.id} receiving messages")
        return out


def parse(text: str) -> list[tuple[list[str], str, str]]:
    """Blocks of (leading comment lines, command, expected output)."""
    blocks: list[tuple[list[str], str, str]] = []
    lines = text.splitlines()
    i = 0
    comments: list[str] = []
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("#"):
            comments.append(line)
            i += 1
            continue
        cmd = line
        assert lines[i + 1] == "----", f"line {i + 2}: expected ----"
        i += 2
        body: list[str] = []
        while i < len(lines) and lines[i] != "":
            body.append(lines[i])
            i += 1
        blocks.append((comments, cmd, "\n".join(body)))
        comments = []
    return blocks


def render(blocks: list[tuple[list[str], str, str]]) -> str:
    out: list[str] = []
    for comments, cmd, body in blocks:
        out += comments
        out += [cmd, "----", body, ""]
    return "\n".join(out).rstrip("\n") + "\n"


def replay(text: str) -> tuple[str, list[str]]:
    """Run a transcript; returns the rewritten text and a list of mismatches."""
    env = Interaction()
    blocks = parse(text)
    actual: list[tuple[list[str], str, str]] = []
    diffs: list[str] = []
    for comments, cmd, expected in blocks:
        got = env.run(cmd)
        if got != expected:
            diffs.append(f"command {cmd!r}:\n--- expected\n{expected}\n+++ actual\n{got}")
        actual.append((comments, cmd, got))
    return render(actual), diffs


__all__ = ["Interaction", "parse", "render", "replay"]
