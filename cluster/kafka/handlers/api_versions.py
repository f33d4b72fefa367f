"""ApiVersions (18): the advertised table, restricted to the APIs this broker serves.

Concern: answering ApiVersions. The protocol table lists what the codec speaks; only the keys a
request path exists for are offered (the caller passes them: the broker's frontend registry),
because clients call whatever is advertised (notes G11). The too-new-version fallback (KIP-511)
is answered by the connection itself. Must not know: sockets, actors, which APIs are served.
"""

from __future__ import annotations

from collections.abc import Container

from redshank.protocol.api_versions import ADVERTISED
from redshank.protocol.messages.api_versions import (
    ApiVersion,
    ApiVersionsRequest,
    ApiVersionsResponse,
)

__all__ = ["handle"]

def handle(request: ApiVersionsRequest, version: int, served: Container[int]
           ) -> ApiVersionsResponse:
    """`served`: the API keys a request path exists for (the broker's frontend registry)."""
    del request, version  # every version gets the same table
    keys = tuple(
        ApiVersion(key, lo, hi) for key, (lo, hi) in sorted(ADVERTISED.items()) if key in served
    )
    # No supported/finalized features: tagged fields break librdkafka < 2.2 (notes G2).
    return ApiVersionsResponse(error_code=0, api_keys=keys)
