"""JoinGroup (11): wire <-> the group coordinator's `JoinGroupRequest` / `JoinGroupResult`.

Concern: version mapping (v0 has no rebalance timeout: the session timeout stands in, as in
Kafka; v4+ asks for the MEMBER_ID_REQUIRED handshake, notes G7). Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import JoinGroupRequest, JoinGroupResult, Protocol
from redshank.protocol.messages import join_group as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.JoinGroupRequest, version: int, client_id: str) -> JoinGroupRequest:
    rebalance = request.rebalance_timeout_ms if version >= 1 else request.session_timeout_ms
    return JoinGroupRequest(
        token=0,
        group_id=request.group_id,
        member_id=request.member_id,
        protocol_type=request.protocol_type,
        protocols=tuple(Protocol(p.name, bytes(p.metadata)) for p in request.protocols),
        session_timeout_ms=request.session_timeout_ms,
        rebalance_timeout_ms=rebalance,
        client_id=client_id,
        group_instance_id=request.group_instance_id,
        require_known_member_id=version >= 4,
        reason=request.reason,
    )


def build(result: JoinGroupResult, version: int) -> wire.JoinGroupResponse:
    return wire.JoinGroupResponse(
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name if result.protocol_name is not None else "",
        leader=result.leader_id,
        member_id=result.member_id,
        members=tuple(
            wire.JoinGroupResponseMember(m.member_id, m.group_instance_id, m.metadata)
            for m in result.members
        ),
    )
