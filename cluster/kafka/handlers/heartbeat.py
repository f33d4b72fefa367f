"""Heartbeat (12): wire <-> the group coordinator's `HeartbeatRequest` / `HeartbeatResult`.

Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import HeartbeatRequest, HeartbeatResult
from redshank.protocol.messages import heartbeat as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.HeartbeatRequest, version: int) -> HeartbeatRequest:
    del version
    return HeartbeatRequest(token=0, group_id=request.group_id,
                            generation_id=request.generation_id, member_id=request.member_id,
                            group_instance_id=request.group_instance_id)


def build(result: HeartbeatResult, version: int) -> wire.HeartbeatResponse:
    del version
    return wire.HeartbeatResponse(error_code=result.error)
