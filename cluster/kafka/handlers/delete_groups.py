"""DeleteGroups (42): wire <-> the group coordinator's `DeleteGroupsRequest` / result.

Concern: each group is deleted by its own coordinator, so `to_api` returns one single-group
request per (distinct) group and `build` lists the answers in request order. Must not know:
actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.group import DeleteGroupsRequest, GroupDeletion
from redshank.protocol.messages import delete_groups as wire

__all__ = ["build", "to_api"]


def to_api(request: wire.DeleteGroupsRequest, version: int) -> list[DeleteGroupsRequest]:
    del version
    return [DeleteGroupsRequest(token=0, group_ids=(g,))
            for g in dict.fromkeys(request.groups_names)]


def build(results: list[GroupDeletion], version: int) -> wire.DeleteGroupsResponse:
    del version
    return wire.DeleteGroupsResponse(results=tuple(
        wire.DeletableGroupResult(group_id=r.group_id, error_code=r.error) for r in results))
