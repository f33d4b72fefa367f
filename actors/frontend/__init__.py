"""The request paths of a core: one frontend module per concern, registered by API key.

Concern: `REGISTRY` (API key -> `Handler`), filled by `@serves` in the frontend modules this
package imports, and `SERVED`, the keys ApiVersions advertises and a session accepts (exactly
the registry's). Adding an API is one frontend module (or function) with its `@serves`, plus
its import here. Must not know: the bytes of a connection (`actors/kafka_session`), node wiring
(`actors/broker`).

    session --handle(key, ...)--> CoreServices --REGISTRY[key]--> frontend fn
                                      |                               |
                                 topic cache, ensure,         cluster/kafka/handlers
                                 ask_partition (owner gone     (plan, build: sans-IO)
                                 -> NOT_LEADER_OR_FOLLOWER)
"""

from __future__ import annotations

from redshank.actors.frontend import (
    fetch,
    groups,
    leadership,
    node,
    offsets,
    produce,
    producers,
    topics,
    transactions,
    txn_markers,
)
from redshank.actors.frontend._registry import REGISTRY, Handler, serves
from redshank.actors.frontend.services import CoreServices, FrontendConfig

__all__ = ["FRONTENDS", "REGISTRY", "SERVED", "CoreServices", "FrontendConfig", "Handler",
           "serves"]

# The frontend modules, each registering its APIs when imported.
FRONTENDS = (fetch, groups, leadership, node, offsets, produce, producers, topics,
             transactions, txn_markers)
SERVED: frozenset[int] = frozenset(REGISTRY)
