"""The classic rebalance protocol on one group: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, expiry.

Kafka's GroupCoordinator semantics (KIP-394 member-id handshake, KIP-345 static membership, the
initial rebalance delay, pending-sync expiry). Time comes in as `now_ms`; deferred answers are
waiters on members or callbacks on appends, and every waiter is completed exactly once:

    member           coordinator                     member (leader)
    JoinGroup("") -> MEMBER_ID_REQUIRED(id)
    JoinGroup(id) -> [waits: PreparingRebalance]  <- JoinGroup(id2)
                  <- gen g, leader, (members)    -> gen g, leader, members     CompletingRebalance
    SyncGroup(g)  -> [waits for the leader]       <- SyncGroup(g, assignments)
                     append group record ... on_persisted
                  <- assignment                  -> assignment                 Stable

Must not know: coordinator status and routing (the caller validated), the wire format.
"""

from __future__ import annotations

import random
import uuid

from redshank.cluster.group._effects import Effects, append_error
from redshank.cluster.group.api import (
    GroupState,
    HeartbeatRequest,
    HeartbeatResult,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupRequest,
    LeaveGroupResult,
    LeaveMemberResult,
    SyncGroupRequest,
    SyncGroupResult,
    Token,
)
from redshank.cluster.group.classic_group import ClassicGroup, Member, Waiter
from redshank.cluster.group.config import GroupConfig
from redshank.cluster.group.group_records import group_record
from redshank.protocol.error_codes import ErrorCode

__all__ = ["Rebalancer"]

_E = ErrorCode


class Rebalancer:
    def __init__(self, config: GroupConfig, effects: Effects, rng: random.Random) -> None:
        self._config = config
        self._fx = effects
        self._rng = rng

    # -- JoinGroup -------------------------------------------------------------------------

    def join(self, group: ClassicGroup, req: JoinGroupRequest, now_ms: int) -> None:
        self._fx.touch(group)
        names = [p.name for p in req.protocols]
        if group.state is GroupState.DEAD:
            self._join_error(req, _E.COORDINATOR_NOT_AVAILABLE)
        elif not group.supports_protocols(req.protocol_type, names):
            self._join_error(req, _E.INCONSISTENT_GROUP_PROTOCOL)
        elif req.member_id == "":
            self._join_new_member(group, req, now_ms)
        elif req.member_id in group.pending_members and req.group_instance_id is None:
            self._add_member(group, req, req.member_id, now_ms)
        else:
            self._join_known_member(group, req, now_ms)
        # Kafka's DelayedJoin check: every join may be the last one the rebalance waits for.
        self._try_complete_join(group, now_ms)

    def _join_error(self, req: JoinGroupRequest, error: ErrorCode, member_id: str = "") -> None:
        self._fx.complete(req.token, JoinGroupResult(error, member_id=member_id))

    def _full(self, group: ClassicGroup) -> bool:
        return len(group.members) + len(group.pending_members) >= self._config.max_group_size

    def _new_member_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"

    def _join_new_member(self, group: ClassicGroup, req: JoinGroupRequest, now_ms: int) -> None:
        instance = req.group_instance_id
        if instance is not None and instance in group.static_members:
            self._rejoin_static_member(group, req, instance, now_ms)
            return
        if self._full(group):
            self._join_error(req, _E.GROUP_MAX_SIZE_REACHED)
            return
        member_id = self._new_member_id(instance if instance is not None else req.client_id)
        if instance is None and req.require_known_member_id:
            # KIP-394: hand out the id and wait for the rejoin, so a client that retries a
            # timed-out join does not leave orphan members behind.
            group.pending_members[member_id] = now_ms + req.session_timeout_ms
            self._join_error(req, _E.MEMBER_ID_REQUIRED, member_id)
        else:
            self._add_member(group, req, member_id, now_ms)

    def _join_known_member(self, group: ClassicGroup, req: JoinGroupRequest, now_ms: int) -> None:
        group.pending_members.pop(req.member_id, None)
        error = _member_error(group, req.member_id, req.group_instance_id)
        if error is not None:
            self._join_error(req, error, req.member_id)
            return
        member = group.members[req.member_id]
        state = group.state
        if state is GroupState.PREPARING_REBALANCE:
            self._update_member(group, member, req, now_ms)
        elif state is GroupState.COMPLETING_REBALANCE:
            if member.matches(req.protocols):
                # The member lost our JoinGroup answer and asks again: repeat it.
                self._fx.complete(req.token, self._join_result(group, member))
            else:
                self._update_member(group, member, req, now_ms)
        elif state is GroupState.STABLE:
            if group.is_leader(member.member_id) or not member.matches(req.protocols):
                # A leader's rejoin means it wants a new assignment (e.g. its metadata changed).
                self._update_member(group, member, req, now_ms)
            else:
                self._fx.complete(req.token, self._join_result(group, member, as_leader=False))
        else:
            self._join_error(req, _E.UNKNOWN_MEMBER_ID, req.member_id)

    def _add_member(self, group: ClassicGroup, req: JoinGroupRequest, member_id: str,
                    now_ms: int) -> None:
        member = Member(
            member_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            req.protocol_type,
            req.protocols,
            join_waiter=Waiter(req.token),
            is_new=True,
            heartbeat_deadline_ms=now_ms + self._config.new_member_join_timeout_ms,
        )
        # Kafka extends the initial delay only for a group's very first generation.
        if group.state is GroupState.PREPARING_REBALANCE and group.generation_id == 0:
            group.new_member_added = True
        group.add(member)
        self._maybe_prepare_rebalance(group, now_ms)

    def _update_member(self, group: ClassicGroup, member: Member, req: JoinGroupRequest,
                       now_ms: int) -> None:
        member.protocols = req.protocols
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        self._set_join_waiter(member, req.token)
        self._maybe_prepare_rebalance(group, now_ms)

    def _set_join_waiter(self, member: Member, token: Token) -> None:
        if member.join_waiter is not None:
            # A second JoinGroup supersedes the first: the client has given up on it.
            self._fx.complete(member.join_waiter.token, JoinGroupResult(_E.REBALANCE_IN_PROGRESS))
        member.join_waiter = Waiter(token)

    def _rejoin_static_member(self, group: ClassicGroup, req: JoinGroupRequest, instance: str,
                              now_ms: int) -> None:
        """KIP-345: a known instance id with no member id replaces (fences) the old member."""
        old_id = group.static_members[instance]
        member = group.members[old_id]
        self._fence(member)
        new_id = self._new_member_id(instance)
        leader_before = group.leader_id or ""
        saved = (member.protocols, member.rebalance_timeout_ms, member.session_timeout_ms)
        group.replace_static_member(instance, old_id, new_id)
        member.protocols = req.protocols
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        member.heartbeat_deadline_ms = now_ms + req.session_timeout_ms
        if group.state is GroupState.STABLE and group.protocol_name == group.select_protocol():
            # Nothing changes for the others: persist the new id and answer with the current
            # generation. The old leader id is returned so a rejoining leader does not compute a
            # new assignment that a Stable group would never distribute.
            generation = group.generation_id

            def persisted(error: ErrorCode, _now: int) -> None:
                self._fx.touch(group)
                if error is not _E.NONE:
                    if group.static_members.get(instance) == new_id and new_id in group.members:
                        group.replace_static_member(instance, new_id, old_id)
                        member.protocols, member.rebalance_timeout_ms = saved[0], saved[1]
                        member.session_timeout_ms = saved[2]
                    self._join_error(req, append_error(error, offsets=False))
                    return
                self._fx.complete(req.token, JoinGroupResult(
                    _E.NONE, new_id, generation, group.protocol_type, group.protocol_name,
                    leader_before,
                ))

            self._fx.append([group_record(group.group_id, group.to_value())], persisted)
            return
        member.join_waiter = Waiter(req.token)
        # In CompletingRebalance the old member may already hold this generation's assignment:
        # only a new rebalance keeps everyone consistent.
        self._maybe_prepare_rebalance(group, now_ms)

    def _fence(self, member: Member) -> None:
        if member.join_waiter is not None:
            self._fx.complete(member.join_waiter.token,
                              JoinGroupResult(_E.FENCED_INSTANCE_ID, member_id=member.member_id))
            member.join_waiter = None
        if member.sync_waiter is not None:
            self._fx.complete(member.sync_waiter.token, SyncGroupResult(_E.FENCED_INSTANCE_ID))
            member.sync_waiter = None

    def _join_result(self, group: ClassicGroup, member: Member,
                     as_leader: bool = True) -> JoinGroupResult:
        leader = group.leader_id or ""
        members = group.joined_members() if as_leader and member.member_id == leader else ()
        return JoinGroupResult(
            _E.NONE, member.member_id, group.generation_id, group.protocol_type,
            group.protocol_name, leader, members,
        )

    # -- rebalance transitions -------------------------------------------------------------

    def _maybe_prepare_rebalance(self, group: ClassicGroup, now_ms: int) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
            self.prepare_rebalance(group, now_ms)

    def prepare_rebalance(self, group: ClassicGroup, now_ms: int) -> None:
        self._fx.touch(group)
        if group.state is GroupState.COMPLETING_REBALANCE:
            self._reset_assignments(group, _E.REBALANCE_IN_PROGRESS, now_ms)
        group.pending_sync.clear()
        group.pending_sync_deadline_ms = None
        group.assignment_in_flight = False
        delay = self._config.initial_rebalance_delay_ms
        if group.state is GroupState.EMPTY and delay > 0:
            group.initial_delay_remaining_ms = max(group.max_rebalance_timeout_ms() - delay, 0)
            group.new_member_added = False
            group.join_deadline_ms = now_ms + delay
        else:
            group.initial_delay_remaining_ms = None
            group.join_deadline_ms = now_ms + max(group.max_rebalance_timeout_ms(), 1)
        group.transition(GroupState.PREPARING_REBALANCE, now_ms)

    def _reset_assignments(self, group: ClassicGroup, error: ErrorCode, now_ms: int) -> None:
        for m in group.members.values():
            m.assignment = b""
            if m.sync_waiter is not None:
                self._fx.complete(m.sync_waiter.token, SyncGroupResult(error))
                m.sync_waiter = None
                # Its session was not counted while it waited on us: it starts again now.
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms

    def _try_complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and group.initial_delay_remaining_ms is None
            and group.all_joined()
        ):
            self._complete_join(group, now_ms)

    def _on_join_deadline(self, group: ClassicGroup, now_ms: int) -> None:
        remaining = group.initial_delay_remaining_ms
        if remaining is not None and group.new_member_added and remaining > 0:
            # Another member arrived during the delay: wait once more, within the timeout.
            step = min(self._config.initial_rebalance_delay_ms, remaining)
            group.initial_delay_remaining_ms = max(remaining - step, 0)
            group.new_member_added = False
            group.join_deadline_ms = now_ms + step
            return
        group.initial_delay_remaining_ms = None
        self._complete_join(group, now_ms)

    def _complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        for m in list(group.members.values()):
            # Dynamic members that did not rejoin are gone; static ones keep their place.
            if m.join_waiter is None and m.group_instance_id is None:
                self._drop(group, m)
        if not self._elect_joined_leader(group) and group.members:
            # Only static members that have not rejoined are left: keep waiting for them.
            group.join_deadline_ms = now_ms + max(group.max_rebalance_timeout_ms(), 1)
            return
        group.generation_id += 1
        group.join_deadline_ms = None
        if not group.members:
            group.protocol_name = None
            group.transition(GroupState.EMPTY, now_ms)
            self._fx.append([group_record(group.group_id, group.to_value())], None)
            return
        group.protocol_name = group.select_protocol()
        group.transition(GroupState.COMPLETING_REBALANCE, now_ms)
        for m in group.members.values():
            if m.join_waiter is not None:
                self._fx.complete(m.join_waiter.token, self._join_result(group, m))
                m.join_waiter = None
            m.is_new = False
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms
        group.pending_sync = set(group.members)
        group.pending_sync_deadline_ms = now_ms + max(group.max_rebalance_timeout_ms(), 1)

    def _elect_joined_leader(self, group: ClassicGroup) -> bool:
        leader = group.members.get(group.leader_id or "")
        if leader is None:
            return False
        if leader.join_waiter is not None:
            return True
        for m in group.members.values():
            if m.join_waiter is not None:
                group.leader_id = m.member_id
                return True
        return False

    # -- SyncGroup -------------------------------------------------------------------------

    def sync(self, group: ClassicGroup, req: SyncGroupRequest, now_ms: int) -> None:
        self._fx.touch(group)
        error = self._sync_error(group, req)
        if error is not None:
            self._fx.complete(req.token, SyncGroupResult(error))
            return
        member = group.members[req.member_id]
        group.pending_sync.discard(member.member_id)
        if group.state is GroupState.STABLE:
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            self._fx.complete(req.token, self._sync_result(group, member))
            return
        # CompletingRebalance: wait for the leader's assignment to be persisted.
        if member.sync_waiter is not None:
            self._fx.complete(member.sync_waiter.token, SyncGroupResult(_E.REBALANCE_IN_PROGRESS))
        member.sync_waiter = Waiter(req.token)
        if group.is_leader(member.member_id) and not group.assignment_in_flight:
            given = dict(req.assignments)
            # Members the leader left out get an empty assignment (Kafka does the same).
            assignments = {mid: given.get(mid, b"") for mid in group.members}
            generation = group.generation_id
            group.assignment_in_flight = True

            def persisted(error: ErrorCode, now: int) -> None:
                self._on_assignment_persisted(group, generation, assignments, error, now)

            record = group_record(group.group_id, group.to_value(assignments))
            self._fx.append([record], persisted)

    def _sync_error(self, group: ClassicGroup, req: SyncGroupRequest) -> ErrorCode | None:
        if group.state is GroupState.DEAD:
            return _E.COORDINATOR_NOT_AVAILABLE
        error = _member_error(group, req.member_id, req.group_instance_id)
        if error is not None:
            return error
        if req.generation_id != group.generation_id:
            return _E.ILLEGAL_GENERATION
        if req.protocol_type is not None and req.protocol_type != group.protocol_type:
            return _E.INCONSISTENT_GROUP_PROTOCOL
        if req.protocol_name is not None and req.protocol_name != group.protocol_name:
            return _E.INCONSISTENT_GROUP_PROTOCOL
        if group.state is GroupState.EMPTY:
            return _E.UNKNOWN_MEMBER_ID
        if group.state is GroupState.PREPARING_REBALANCE:
            return _E.REBALANCE_IN_PROGRESS
        return None

    def _sync_result(self, group: ClassicGroup, member: Member) -> SyncGroupResult:
        return SyncGroupResult(_E.NONE, member.assignment, group.protocol_type, group.protocol_name)

    def _on_assignment_persisted(self, group: ClassicGroup, generation: int,
                                 assignments: dict[str, bytes], error: ErrorCode,
                                 now_ms: int) -> None:
        if group.state is not GroupState.COMPLETING_REBALANCE or group.generation_id != generation:
            return  # a rebalance started meanwhile and already answered the waiters
        self._fx.touch(group)
        group.assignment_in_flight = False
        if error is not _E.NONE:
            self._reset_assignments(group, append_error(error, offsets=False), now_ms)
            self.prepare_rebalance(group, now_ms)
            return
        for m in group.members.values():
            m.assignment = assignments.get(m.member_id, b"")
            if m.sync_waiter is not None:
                self._fx.complete(m.sync_waiter.token, self._sync_result(group, m))
                m.sync_waiter = None
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms
        group.transition(GroupState.STABLE, now_ms)

    # -- Heartbeat -------------------------------------------------------------------------

    def heartbeat(self, group: ClassicGroup, req: HeartbeatRequest, now_ms: int) -> None:
        self._fx.touch(group)
        if group.state is GroupState.DEAD:
            error: ErrorCode | None = _E.COORDINATOR_NOT_AVAILABLE
        else:
            error = _member_error(group, req.member_id, req.group_instance_id)
        if error is None and req.generation_id != group.generation_id:
            error = _E.ILLEGAL_GENERATION
        if error is None:
            member = group.members[req.member_id]
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            if group.state is GroupState.PREPARING_REBALANCE:
                error = _E.REBALANCE_IN_PROGRESS  # the member rejoins on this
            elif group.state is GroupState.EMPTY:
                error = _E.UNKNOWN_MEMBER_ID
        self._fx.complete(req.token, HeartbeatResult(error or _E.NONE))

    # -- LeaveGroup ------------------------------------------------------------------------

    def leave(self, group: ClassicGroup, req: LeaveGroupRequest, now_ms: int) -> None:
        self._fx.touch(group)
        if group.state is GroupState.DEAD:
            self._fx.complete(req.token, LeaveGroupResult(_E.COORDINATOR_NOT_AVAILABLE))
            return
        results = []
        for lm in req.members:
            if lm.member_id == "":
                # Administrative removal of a static member by instance id (KIP-345).
                current = group.static_members.get(lm.group_instance_id or "")
                if lm.group_instance_id is not None and current is not None:
                    self.remove_member(group, group.members[current], now_ms)
                    error = _E.NONE
                else:
                    error = _E.UNKNOWN_MEMBER_ID
            elif lm.member_id in group.pending_members:
                del group.pending_members[lm.member_id]
                self._try_complete_join(group, now_ms)
                error = _E.NONE
            elif group.is_static_fenced(lm.group_instance_id, lm.member_id):
                error = _E.FENCED_INSTANCE_ID
            elif lm.member_id in group.members:
                self.remove_member(group, group.members[lm.member_id], now_ms)
                error = _E.NONE
            else:
                error = _E.UNKNOWN_MEMBER_ID
            results.append(LeaveMemberResult(lm.member_id, lm.group_instance_id, error))
        self._fx.complete(req.token, LeaveGroupResult(_E.NONE, tuple(results)))

    # -- removal and expiry ----------------------------------------------------------------

    def _drop(self, group: ClassicGroup, member: Member) -> None:
        """Remove a member, answering anything it still waits for (it must join afresh)."""
        if member.join_waiter is not None:
            self._fx.complete(member.join_waiter.token, JoinGroupResult(_E.UNKNOWN_MEMBER_ID))
            member.join_waiter = None
        if member.sync_waiter is not None:
            self._fx.complete(member.sync_waiter.token, SyncGroupResult(_E.UNKNOWN_MEMBER_ID))
            member.sync_waiter = None
        group.remove(member.member_id)

    def remove_member(self, group: ClassicGroup, member: Member, now_ms: int) -> None:
        """A member left or expired: the others rebalance without it."""
        self._fx.touch(group)
        self._drop(group, member)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self.prepare_rebalance(group, now_ms)
        self._try_complete_join(group, now_ms)

    def expire(self, group: ClassicGroup, now_ms: int) -> None:
        """Everything due at `now_ms` in this group: pending ids, sessions, join and sync waits."""
        self._fx.touch(group)
        expired_pending = [mid for mid, d in group.pending_members.items() if d <= now_ms]
        for mid in expired_pending:
            del group.pending_members[mid]
        if expired_pending:
            self._try_complete_join(group, now_ms)
        for m in list(group.members.values()):
            deadline = m.expiry_deadline_ms()
            still_here = group.members.get(m.member_id) is m
            if still_here and deadline is not None and deadline <= now_ms:
                self.remove_member(group, m, now_ms)
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and group.join_deadline_ms is not None
            and group.join_deadline_ms <= now_ms
        ):
            self._on_join_deadline(group, now_ms)
        if (
            group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)
            and group.pending_sync
            and group.pending_sync_deadline_ms is not None
            and group.pending_sync_deadline_ms <= now_ms
        ):
            # Members that joined but never synced within the rebalance timeout are gone; the
            # rest rebalance (otherwise followers could wait for a dead leader forever).
            for mid in list(group.pending_sync):
                self._drop(group, group.members[mid])
            self.prepare_rebalance(group, now_ms)
            self._try_complete_join(group, now_ms)

    def fail_waiters(self, group: ClassicGroup, error: ErrorCode) -> None:
        """Answer every waiting JoinGroup/SyncGroup with `error` (the coordinator is moving)."""
        for m in group.members.values():
            if m.join_waiter is not None:
                self._fx.complete(m.join_waiter.token, JoinGroupResult(error))
                m.join_waiter = None
            if m.sync_waiter is not None:
                self._fx.complete(m.sync_waiter.token, SyncGroupResult(error))
                m.sync_waiter = None


def _member_error(group: ClassicGroup, member_id: str, instance_id: str | None) -> ErrorCode | None:
    """Kafka's validateCurrentMember: a fenced static instance, then an unknown member id."""
    if group.is_static_fenced(instance_id, member_id):
        return _E.FENCED_INSTANCE_ID
    if member_id not in group.members:
        return _E.UNKNOWN_MEMBER_ID
    return None
