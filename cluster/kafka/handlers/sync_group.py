"""SyncGroup (14): wire <-> the group coordinator's `SyncGroupRequest` / `SyncGroupResult`.

Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import SyncGroupRequest, SyncGroupResult
from redshank.protocol.messages import sync_group as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.SyncGroupRequest, version: int) -> SyncGroupRequest:
    del version
    return SyncGroupRequest(
        token=0,
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        assignments=tuple((a.member_id, bytes(a.assignment)) for a in request.assignments),
        group_instance_id=request.group_instance_id,
        protocol_type=request.protocol_type,
        protocol_name=request.protocol_name,
    )


def build(result: SyncGroupResult, version: int) -> wire.SyncGroupResponse:
    del version
    return wire.SyncGroupResponse(error_code=result.error, protocol_type=result.protocol_type,
                                  protocol_name=result.protocol_name,
                                  assignment=result.assignment)
