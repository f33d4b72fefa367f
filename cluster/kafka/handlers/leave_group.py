"""LeaveGroup (13): wire <-> the group coordinator's `LeaveGroupRequest` / `LeaveGroupResult`.

Concern: v0-2 name one member (its error becomes the top-level error), v3+ a batch of members
(notes G10). Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import LeaveGroupRequest, LeaveGroupResult, LeaveMember
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import leave_group as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.LeaveGroupRequest, version: int) -> LeaveGroupRequest:
    members: tuple[LeaveMember, ...]
    if version < 3:
        members = (LeaveMember(request.member_id),)
    else:
        members = tuple(LeaveMember(m.member_id, m.group_instance_id, m.reason)
                        for m in request.members)
    return LeaveGroupRequest(token=0, group_id=request.group_id, members=members)


def build(result: LeaveGroupResult, version: int) -> wire.LeaveGroupResponse:
    if version < 3:
        error = result.error
        if error == ErrorCode.NONE and result.members:
            error = result.members[0].error
        return wire.LeaveGroupResponse(error_code=error)
    return wire.LeaveGroupResponse(
        error_code=result.error,
        members=tuple(wire.MemberResponse(m.member_id, m.group_instance_id, m.error)
                      for m in result.members),
    )
