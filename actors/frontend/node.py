"""Node APIs: ApiVersions and DescribeCluster.

Concern: what this node says of itself: the APIs it serves (exactly the registry's keys) and
the cluster it belongs to. Must not know: topics, partitions, groups.
"""

from __future__ import annotations

from redshank.actors.frontend._registry import serves
from redshank.actors.frontend.services import CoreServices
from redshank.cluster.kafka import handlers as h
from redshank.protocol import messages as m
from redshank.protocol.api_versions import ApiKey

__all__: list[str] = []


@serves(ApiKey.API_VERSIONS)
def api_versions(core: CoreServices, request: m.api_versions.ApiVersionsRequest, version: int
                 ) -> m.api_versions.ApiVersionsResponse:
    return h.api_versions.handle(request, version, core.served)


@serves(ApiKey.DESCRIBE_CLUSTER)
async def describe_cluster(core: CoreServices,
                           request: m.describe_cluster.DescribeClusterRequest, version: int
                           ) -> m.describe_cluster.DescribeClusterResponse:
    result = await core.lookup(())
    return h.describe_cluster.handle(request, version, core.broker, result.cluster_id)
