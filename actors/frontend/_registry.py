"""The registry of request paths: one `Handler` per served API key, filled by `@serves`.

Concern: which function serves which API key, and how it is called (at once, with the client
id, or two-phase). Must not know: what a handler does, sessions, partitions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from redshank.protocol.api_versions import ApiKey
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["REGISTRY", "Handler", "serves"]

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True, slots=True)
class Handler:
    """`serve(core, request, version)` (plus `client_id` when `client_id`) -> the response, or
    an awaitable of it; two-phase (produce): an awaitable that completes once the request's
    order is fixed (sequenced) with the future of its response (acknowledged)."""

    api_key: ApiKey
    serve: Callable[..., object]
    module: str
    two_phase: bool = False
    client_id: bool = False


REGISTRY: dict[int, Handler] = {}


def serves(api_key: ApiKey, *, two_phase: bool = False, client_id: bool = False
           ) -> Callable[[F], F]:
    """Register the decorated function as the request path of `api_key` (once per key)."""

    def register(fn: F) -> F:
        if api_key in REGISTRY:
            raise ValueError(f"{api_key.name} is served twice: by {REGISTRY[api_key].module} "
                             f"and {fn.__module__}")
        REGISTRY[api_key] = Handler(api_key, fn, fn.__module__, two_phase, client_id)
        return fn

    return register
