"""Node APIs: ApiVersions and DescribeCluster.

Concern: what this node says of itself: the APIs it serves (exactly the registry's keys) and
the cluster it belongs to (in cluster mode the controller's view: every broker, group 0's
leader, the cluster's id). Must not know: topics, partitions, groups.
"""

from __future__ import annotations

import asyncio
import contextlib

from redshank.actors._async import resolve
from redshank.actors.controller_service import CONTROLLER_SERVICE, DescribeTopics
from redshank.actors.frontend._registry import serves
from redshank.actors.frontend.services import UNREACHABLE, CoreServices
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
    if core.cluster_mode:
        with contextlib.suppress(*UNREACHABLE):  # the node alone, as Metadata falls back
            view = await asyncio.wait_for(resolve(core.router.ref(0, CONTROLLER_SERVICE).ask(
                DescribeTopics(()), block=False)), core.config.controller_timeout_s)
            if view.cluster_id is not None:
                return h.describe_cluster.handle(request, version, core.broker,
                                                 view.cluster_id, view.brokers,
                                                 view.controller_id)
    return h.describe_cluster.handle(request, version, core.broker, result.cluster_id)
