"""ListGroups (16): wire <-> the group coordinators' `ListGroupsRequest` / results.

Concern: every `__consumer_offsets` partition has its own coordinator, so the broker asks each
and `build` merges the listings; the first coordinator error is the response's error. The
states filter exists from v4, the types filter from v5. Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import ListGroupsRequest, ListGroupsResult
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import list_groups as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.ListGroupsRequest, version: int) -> ListGroupsRequest:
    return ListGroupsRequest(
        token=0,
        states_filter=tuple(request.states_filter) if version >= 4 else (),
        types_filter=tuple(request.types_filter) if version >= 5 else ())


def build(results: list[ListGroupsResult], version: int) -> wire.ListGroupsResponse:
    error = next((r.error for r in results if r.error != ErrorCode.NONE), ErrorCode.NONE)
    return wire.ListGroupsResponse(
        error_code=error,
        groups=tuple(
            wire.ListedGroup(group_id=g.group_id, protocol_type=g.protocol_type,
                             group_state=g.state if version >= 4 else "",
                             group_type=g.group_type if version >= 5 else "")
            for r in results for g in r.groups))
