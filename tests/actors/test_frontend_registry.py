"""The frontend registry: adding an API is one frontend module (or function) plus its `@serves`.

Every served API key has exactly one request path, registered by a module of `actors/frontend`
that the package imports; ApiVersions advertises exactly the registry's keys, and a session
accepts exactly them; each request path is typed with the generated request class of its key.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from types import SimpleNamespace
from typing import Any, cast

import pytest

import redshank.actors.frontend as frontend
from redshank.actors.broker import BrokerConfig
from redshank.actors.frontend import FRONTENDS, REGISTRY, SERVED, CoreServices, serves
from redshank.protocol import messages
from redshank.protocol.api_versions import ADVERTISED, ApiKey
from redshank.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse

# Modules of the package that serve no API themselves.
_SUPPORT = {"_internal_topics", "_registry", "_txn_coordinators", "services"}


def _core() -> CoreServices:
    router = SimpleNamespace(core=0, ncores=1)
    ctx = SimpleNamespace(core=0, ncores=1, router=router, loop=None)
    return CoreServices(BrokerConfig("127.0.0.1", 0, "127.0.0.1", 0, "/nonexistent"),
                        cast(Any, ctx))


def _advertised(core: CoreServices) -> set[int]:
    resp = core.handle(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(), "")
    assert isinstance(resp, ApiVersionsResponse)
    return {k.api_key for k in resp.api_keys}


def test_every_frontend_module_is_imported_and_registers_its_apis() -> None:
    found = {m.name for m in pkgutil.iter_modules(frontend.__path__)} - _SUPPORT
    assert found == {m.__name__.rsplit(".", 1)[1] for m in FRONTENDS}
    modules = {h.module for h in REGISTRY.values()}
    assert modules == {m.__name__ for m in FRONTENDS}  # each serves at least one API
    for key, h in REGISTRY.items():
        assert h.api_key == key and getattr(importlib.import_module(h.module),
                                            h.serve.__name__) is h.serve


def test_api_versions_advertises_exactly_the_registry_and_sessions_accept_exactly_it() -> None:
    core = _core()
    assert SERVED == set(REGISTRY) == core.served
    assert _advertised(core) == set(REGISTRY)
    assert set(REGISTRY) <= set(ADVERTISED)  # the codec speaks every served API
    assert core.two_phase == {ApiKey.PRODUCE}
    for key in (ApiKey.DESCRIBE_GROUPS, ApiKey.LIST_GROUPS, ApiKey.DELETE_GROUPS,
                ApiKey.DESCRIBE_CLUSTER, ApiKey.DELETE_TOPICS, ApiKey.DESCRIBE_CONFIGS,
                ApiKey.CREATE_PARTITIONS, ApiKey.DELETE_RECORDS, ApiKey.OFFSET_FOR_LEADER_EPOCH):
        assert key in SERVED
    assert ApiKey.SASL_HANDSHAKE not in SERVED


def test_each_request_path_is_typed_with_its_generated_request_class() -> None:
    for key, h in REGISTRY.items():
        hints = typing.get_type_hints(h.serve)
        assert hints["request"] is messages.REQUESTS[key], h.serve.__qualname__
        returned = hints["return"]
        response = messages.RESPONSES[key]
        assert response in (returned, *typing.get_args(returned)), h.serve.__qualname__


def test_adding_an_api_is_one_function_and_its_registration() -> None:
    key = ApiKey.SASL_HANDSHAKE
    assert key in ADVERTISED and key not in REGISTRY

    @serves(key)
    def sasl_handshake(core: CoreServices, request: Any, version: int) -> str:
        return f"answered v{version}"

    try:
        core = _core()  # a core set up after the registration serves it
        assert key in core.served and key in _advertised(core)
        assert core.handle(key, 1, object(), "") == "answered v1"
        with pytest.raises(ValueError, match="served twice"):
            serves(key)(sasl_handshake)
    finally:
        del REGISTRY[key]


def test_join_group_gets_the_client_id() -> None:
    assert [k for k, h in REGISTRY.items() if h.client_id] == [ApiKey.JOIN_GROUP]
    hints = typing.get_type_hints(REGISTRY[ApiKey.JOIN_GROUP].serve)
    assert hints["client_id"] is str

