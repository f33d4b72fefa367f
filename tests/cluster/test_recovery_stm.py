"""recovery_stm: one lagging follower recovered with one append in flight until one is
acknowledged, then with its window of pipelined appends, handed over to replication through the
last-sent cursor without overlapping appends; restarted after a rejection; a lost pipelined
append probed again; surviving the follower's crash mid-recovery. The unit alone, then inside
the core."""

from __future__ import annotations

import random

from redshank.cluster.raft import (
    Config,
    Entry,
    EntryKind,
    HardState,
    Index,
    MemoryLog,
    Message,
    MessageType,
    NodeId,
    RaftConfig,
    RaftCore,
    Role,
    Term,
)
from redshank.cluster.raft.progress import Progress, ProgressState
from redshank.cluster.raft.recovery_stm import RecoveryStm

MT = MessageType
VOTERS = frozenset({NodeId(1), NodeId(2), NodeId(3)})
LAG = NodeId(2)


# ---- the unit ---------------------------------------------------------------------------------


def test_unit_one_request_in_flight_until_answered() -> None:
    r = RecoveryStm(target=Index(10))
    assert r.may_send()
    r.sent()
    assert not r.may_send()
    assert not r.acked(Index(4), Index(5))  # behind the target: keep recovering
    assert r.may_send()
    r.sent()
    assert r.acked(Index(12), Index(13))  # past the target: finished


def test_unit_rejection_moves_the_cursor_back_and_ignores_stale_ones() -> None:
    r = RecoveryStm(target=Index(30))
    r.sent()
    assert r.rejected(Index(20), Index(2), Index(9), Index(4)) is None  # older append
    assert not r.may_send()
    assert r.rejected(Index(20), Index(2), Index(19), Index(4)) == 5
    assert r.may_send()
    r.sent()
    assert r.rejected(Index(5), Index(2), Index(4), Index(0)) == 3  # never at/below match


def test_unit_retry_after_a_lost_append() -> None:
    r = RecoveryStm(target=Index(3))
    r.sent()
    r.retry()
    assert r.may_send()


def test_unit_pipelines_once_matched_and_probes_again_after_a_rejection() -> None:
    r = RecoveryStm(target=Index(100), window=3)
    assert r.may_send() and not r.pipelined
    r.sent()
    assert not r.may_send()  # the probe: one in flight until answered
    assert not r.acked(Index(32), Index(33))
    assert r.pipelined and r.may_send(2) and not r.may_send(3)
    assert r.rejected(Index(97), Index(32), Index(20), Index(0)) is None  # at/below match: stale
    assert r.rejected(Index(97), Index(32), Index(64), Index(40)) == 33  # from match + 1
    assert not r.pipelined and r.may_send() and not r.in_flight


def test_progress_pipelined_recovery_moves_the_cursor_and_resets_on_a_lost_append() -> None:
    pr = Progress(match=Index(0), next=Index(1), recovery=RecoveryStm(target=Index(100),
                                                                       window=2),
                  recovery_window=2)
    pr.sent(Index(32), 32)
    assert pr.paused(16) and pr.next == 1  # the probe does not move the cursor
    pr.acked(Index(32))
    pr.match_at_beat = pr.match
    pr.sent(Index(64), 32)
    pr.sent(Index(96), 32)
    assert pr.paused(16) and pr.next == 97 and pr.inflight == [64, 96]
    pr.heartbeat_answered()  # no progress over an interval: an append or its answer was lost
    assert pr.recovery is not None and not pr.recovery.pipelined
    assert pr.next == 33 and pr.inflight == [] and not pr.paused(16)


def test_progress_starts_recovery_on_rejection_and_hands_over_at_the_target() -> None:
    pr = Progress(match=Index(7), next=Index(11))
    pr.inflight = [9, 10]
    assert pr.rejected(Index(9), Index(8), Index(40))
    assert pr.recovery == RecoveryStm(target=Index(40)) and pr.next == 8 and pr.inflight == []
    pr.sent(Index(39), 32)
    assert pr.next == 8  # recovery does not move the cursor optimistically
    pr.acked(Index(39))
    assert pr.state == ProgressState.PROBE and pr.next == 40  # 39 < target 40
    pr.sent(Index(45), 6)
    pr.acked(Index(45))
    assert pr.state == ProgressState.REPLICATE and (pr.match, pr.next) == (45, 46)


# ---- inside the core --------------------------------------------------------------------------


def _entries(n: int) -> list[Entry]:
    return [Entry(Term(1), Index(i), EntryKind.DATA, (b"r%d" % i,)) for i in range(1, n + 1)]


def _core(node: NodeId, log: list[Entry], hs: HardState, window: int = 4) -> RaftCore:
    cfg = RaftConfig(id=node, rng=random.Random(node), max_recovery_inflight=window)
    return RaftCore(cfg, MemoryLog(log), hs, Config(voters=VOTERS))


class Net:
    """Persists every Ready at once; delivers messages in rounds; records every append sent to
    the lagging follower with whether the leader was recovering it when it left."""

    def __init__(self, lag_log: int, window: int = 4) -> None:
        hs = HardState(Term(1), NodeId(1), Index(0))
        full = _entries(100)
        self.cores = {NodeId(1): _core(NodeId(1), full, hs, window),
                      LAG: _core(LAG, full[:lag_log], hs),
                      NodeId(3): _core(NodeId(3), full, hs)}
        self.down: set[NodeId] = set()
        self.appends: list[tuple[int, int, bool]] = []  # (first, last, recovering) to LAG
        self.outstanding = 0  # appends to LAG sent in recovery and not yet answered
        self.max_outstanding = 0
        self.targets: list[int] = []  # recovery target when each recovery append left
        self.outstanding_at_first_ack = -1  # recovery appends in flight at LAG's first ack
        self.drop_appends = 0  # lose the next N appends to LAG

    @property
    def leader(self) -> RaftCore:
        return self.cores[NodeId(1)]

    def round(self) -> bool:
        msgs: list[Message] = []
        for n, c in self.cores.items():
            if n in self.down:
                continue
            while c.has_ready():
                rd = c.ready()
                c.on_persisted(rd.mark)
                msgs += rd.messages + rd.messages_after_persist
        for m in msgs:
            if m.type == MT.APPEND and m.dst == LAG:
                pr = self.leader.progress[LAG]
                recovering = pr.recovery is not None
                if m.entries:
                    self.appends.append((m.entries[0].index, m.entries[-1].index, recovering))
                if pr.recovery is not None:
                    self.targets.append(pr.recovery.target)
                    self.outstanding += 1
                    self.max_outstanding = max(self.max_outstanding, self.outstanding)
            if m.dst in self.down or m.src in self.down:
                continue
            if m.type == MT.APPEND and m.dst == LAG and self.drop_appends:
                self.drop_appends -= 1
                continue
            if m.type == MT.APPEND_RESPONSE and m.src == LAG and self.outstanding:
                if not m.reject and self.outstanding_at_first_ack < 0:
                    self.outstanding_at_first_ack = self.outstanding
                self.outstanding -= 1
            self.cores[m.dst].step(m)
        return bool(msgs)

    def run(self, propose_each_round: bool = False, rounds: int = 200) -> None:
        for _ in range(rounds):
            if propose_each_round and len(self.appends) < 20:
                self.leader.propose((b"new",))
            if not self.round():
                return

    def crash_and_restart(self, node: NodeId) -> None:
        old = self.cores[node]
        log = old.log.slice(Index(1), old.last_index())
        self.cores[node] = _core(node, log, old.hard_state())


def _elected(lag_log: int, window: int = 4) -> Net:
    net = Net(lag_log, window)
    net.leader.campaign()
    for _ in range(10):  # prevote, then vote
        if net.leader.role == Role.LEADER:
            break
        net.round()
    assert net.leader.role == Role.LEADER
    return net


def test_lagging_follower_recovered_with_one_request_in_flight() -> None:
    net = _elected(lag_log=0, window=1)
    assert net.leader.progress[LAG].recovery is not None
    net.run()
    assert net.max_outstanding == 1
    recovering = [a for a in net.appends if a[2]]
    assert len(recovering) >= 4  # 101 entries at 32 per append, one round trip each
    assert net.cores[LAG].log.slice(Index(1), Index(101)) == \
        net.leader.log.slice(Index(1), Index(101))


def test_lagging_follower_recovered_with_a_window_once_matched() -> None:
    net = _elected(lag_log=0, window=3)
    net.run()
    assert net.outstanding_at_first_ack == 1  # the probe alone until the logs matched
    assert net.max_outstanding == 3  # then the window
    recovering = [(lo, hi) for lo, hi, rec in net.appends if rec]
    sent = [i for lo, hi in recovering[1:] for i in range(lo, hi + 1)]  # after the rejected probe
    assert sent == list(range(1, 102))  # each entry once, in order
    assert net.leader.progress[LAG].recovery is None
    assert net.cores[LAG].log.slice(Index(1), Index(101)) == \
        net.leader.log.slice(Index(1), Index(101))


def test_lost_pipelined_append_is_probed_again() -> None:
    net = _elected(lag_log=0, window=3)
    while not any(a[2] and a[0] == 33 for a in net.appends):
        net.round()  # the rejected probe, the probe from 1, then the pipeline from 33
    net.drop_appends = 1  # 65..96 is lost: 97..101 leaves a gap and is rejected
    net.run()
    for _ in range(3):
        net.leader.tick()
        net.run()
    pr = net.leader.progress[LAG]
    assert pr.recovery is None and pr.match == net.leader.last_index() == 101
    assert net.cores[LAG].log.slice(Index(1), Index(101)) == \
        net.leader.log.slice(Index(1), Index(101))


def test_recovery_and_replication_never_send_overlapping_appends() -> None:
    # Proposals arrive throughout the recovery, so replication wants to send new entries
    # while recovery is still walking the old ones. Only the first probe (at the leader's
    # log end) is rejected; after it every entry must be sent exactly once.
    net = _elected(lag_log=10)
    net.run(propose_each_round=True)
    first, *rest = net.appends
    assert first[2] and first[0] == 101  # the no-op probe the follower rejects
    sent: dict[int, int] = {}
    for lo, hi, _ in rest:
        for i in range(lo, hi + 1):
            sent[i] = sent.get(i, 0) + 1
    twice = sorted(i for i, k in sent.items() if k > 1)
    assert twice == [], f"entries sent by both recovery and replication: {twice}"
    assert any(not rec for _, _, rec in rest), "replication never took over"
    last = net.leader.last_index()
    assert sorted(sent) == list(range(11, last + 1))
    assert net.cores[LAG].last_index() == last


def test_recovery_stops_when_caught_up() -> None:
    net = _elected(lag_log=40)
    net.run()
    pr = net.leader.progress[LAG]
    assert pr.recovery is None and pr.state == ProgressState.REPLICATE
    assert pr.match == net.leader.last_index() == 101 and pr.next == 102
    n = len(net.appends)
    net.run()
    assert len(net.appends) == n  # nothing more to send once caught up
    net.leader.propose((b"x",))
    net.run()
    assert net.appends[n:] == [(102, 102, False)]  # replication, not recovery


def test_recovery_restarts_after_a_rejection() -> None:
    net = _elected(lag_log=100)
    net.run()
    pr = net.leader.progress[LAG]
    assert pr.recovery is None
    # One pipelined append is lost; the next one leaves a gap on the follower, which rejects
    # it. A new recovery starts from `match + 1` with the leader's log end as its target.
    n = len(net.appends)
    net.drop_appends = 1
    net.leader.propose((b"y",))
    net.round()
    net.leader.propose((b"z",))
    net.run()
    assert net.appends[n:] == [(102, 102, False), (103, 103, False), (102, 103, True)]
    assert net.targets[-1] == 103
    assert pr.recovery is None and pr.match == 103
    assert net.cores[LAG].log.slice(Index(1), Index(103)) == \
        net.leader.log.slice(Index(1), Index(103))


def test_follower_crash_mid_recovery() -> None:
    net = _elected(lag_log=0)
    while not any(a[2] and a[0] == 1 for a in net.appends):
        net.round()  # the rejected probe, then the first recovery append from index 1
    net.down.add(LAG)
    net.run()  # the append and its answer are lost; the leader waits with it in flight
    pr = net.leader.progress[LAG]
    assert pr.recovery is not None and pr.probe_sent
    n = len(net.appends)
    net.leader.propose((b"z",))
    net.run()
    assert len(net.appends) == n  # still one in flight: new entries do not go out
    net.crash_and_restart(LAG)
    net.down.discard(LAG)
    for _ in range(5):  # heartbeats answered: retry from the unchanged cursor
        net.leader.tick()
        net.run()
    assert pr.recovery is None and pr.match == net.leader.last_index() == 102
    assert net.cores[LAG].log.slice(Index(1), Index(102)) == \
        net.leader.log.slice(Index(1), Index(102))
