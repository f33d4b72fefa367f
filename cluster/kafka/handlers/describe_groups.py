"""DescribeGroups (15): wire <-> the group coordinator's `DescribeGroupsRequest` / result.

Concern: each group is described by its own coordinator, so `to_api` returns one single-group
request per group and `build` joins the answers in request order. `authorized_operations` stays
INT32_MIN (no ACLs, notes G14). Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import DescribedGroup, DescribeGroupsRequest
from redshank.protocol.messages import describe_groups as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.DescribeGroupsRequest, version: int) -> list[DescribeGroupsRequest]:
    del version
    return [DescribeGroupsRequest(token=0, group_ids=(g,)) for g in dict.fromkeys(request.groups)]


def build(groups: list[DescribedGroup], version: int) -> wire.DescribeGroupsResponse:
    return wire.DescribeGroupsResponse(groups=tuple(
        wire.DescribedGroup(
            error_code=g.error, group_id=g.group_id, group_state=g.state,
            protocol_type=g.protocol_type, protocol_data=g.protocol_name,
            members=tuple(
                wire.DescribedGroupMember(
                    member_id=m.member_id,
                    # v4+ carries the static member id; older versions must leave it at None.
                    group_instance_id=m.group_instance_id if version >= 4 else None,
                    client_id=m.client_id, client_host=m.client_host,
                    member_metadata=m.metadata, member_assignment=m.assignment)
                for m in g.members))
        for g in groups))
