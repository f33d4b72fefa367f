"""The spec reader: comment stripping, version ranges, names, broker-listener filtering."""

from __future__ import annotations

from pathlib import Path

import pytest

from redshank.tools.codegen.spec import Versions, load_api_specs, load_spec, to_snake


@pytest.mark.parametrize(
    ("name", "snake"),
    [("TopicData", "topic_data"), ("ThrottleTimeMs", "throttle_time_ms"), ("ClientId", "client_id"),
     ("ApiKey", "api_key"), ("IsolationLevel", "isolation_level"),
     ("TransactionalId", "transactional_id"), ("ZkMigrationReady", "zk_migration_ready")],
)
def test_snake_case_names(name: str, snake: str) -> None:
    assert to_snake(name) == snake


def test_version_ranges() -> None:
    assert 9 in Versions.parse("9+") and 8 not in Versions.parse("9+")
    assert 2 in Versions.parse("0-2") and 3 not in Versions.parse("0-2")
    assert Versions.parse("none").empty and 0 not in Versions.parse("none")
    assert str(Versions.parse("3+")) == "3+" and str(Versions.parse("4")) == "4-4"


def test_comments_stripped_and_common_structs_resolved(tmp_path: Path) -> None:
    spec = tmp_path / "DemoRequest.json"
    spec.write_text(
        "// Licensed to the Apache Software Foundation\n"
        '{ "apiKey": 99, "type": "request", "listeners": ["broker"], "name": "DemoRequest",\n'
        '  // a comment inside\n'
        '  "validVersions": "0-3", "flexibleVersions": "2+",\n'
        '  "fields": [ { "name": "Items", "type": "[]Item", "versions": "0+" } ],\n'
        '  "commonStructs": [ { "name": "Item", "versions": "0+", "fields": [\n'
        '    { "name": "Id", "type": "int32", "versions": "0+", "about": "prose" } ] } ] }\n'
    )
    msg = load_spec(spec)
    assert (msg.api_key, msg.valid.lo, msg.valid.hi, msg.flexible.lo) == (99, 0, 3, 2)
    items = msg.body.fields[0]
    assert items.is_array and items.struct is not None and items.struct.fields[0].attr == "id"


def test_only_broker_apis_and_both_headers() -> None:
    from redshank.tools.codegen.generate import default_spec_dir

    pairs, headers = load_api_specs(default_spec_dir())
    assert [h.name for h in headers] == ["RequestHeader", "ResponseHeader"]
    assert all("broker" in req.listeners for req, _ in pairs)
    keys = {req.api_key for req, _ in pairs}
    assert {0, 1, 3, 18, 60} <= keys
    assert 4 not in keys  # LeaderAndIsr is zkBroker/controller only
