"""ApiVersions (18): the advertised table, restricted to the APIs this broker serves.

Concern: answering ApiVersions. The protocol table lists what the codec speaks; only the keys a
handler exists for are offered, because clients call whatever is advertised (notes G11). The
too-new-version fallback (KIP-511) is answered by the connection itself. Must not know: sockets,
actors.
"""

from __future__ import annotations

from redshank.protocol.api_versions import ADVERTISED, ApiKey
from redshank.protocol.messages.api_versions import (
    ApiVersion,
    ApiVersionsRequest,
    ApiVersionsResponse,
)

__all__ = ["SERVED", "handle"]

SERVED: frozenset[int] = frozenset(
    {
        ApiKey.PRODUCE,
        ApiKey.FETCH,
        ApiKey.LIST_OFFSETS,
        ApiKey.METADATA,
        ApiKey.API_VERSIONS,
        ApiKey.CREATE_TOPICS,
        ApiKey.INIT_PRODUCER_ID,
        ApiKey.FIND_COORDINATOR,
        ApiKey.JOIN_GROUP,
        ApiKey.SYNC_GROUP,
        ApiKey.HEARTBEAT,
        ApiKey.LEAVE_GROUP,
        ApiKey.OFFSET_COMMIT,
        ApiKey.OFFSET_FETCH,
        ApiKey.DESCRIBE_GROUPS,
        ApiKey.LIST_GROUPS,
        ApiKey.DELETE_GROUPS,
        ApiKey.DESCRIBE_CLUSTER,
        ApiKey.DELETE_TOPICS,
        ApiKey.DESCRIBE_CONFIGS,
        ApiKey.CREATE_PARTITIONS,
        ApiKey.DELETE_RECORDS,
        ApiKey.OFFSET_FOR_LEADER_EPOCH,
        ApiKey.ALTER_CONFIGS,
        ApiKey.INCREMENTAL_ALTER_CONFIGS,
    }
)


def handle(request: ApiVersionsRequest, version: int) -> ApiVersionsResponse:
    del request, version  # every version gets the same table
    keys = tuple(
        ApiVersion(key, lo, hi) for key, (lo, hi) in sorted(ADVERTISED.items()) if key in SERVED
    )
    # No supported/finalized features: tagged fields break librdkafka < 2.2 (notes G2).
    return ApiVersionsResponse(error_code=0, api_keys=keys)
