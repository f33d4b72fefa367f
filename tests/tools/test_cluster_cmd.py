"""`redshank cluster start`'s port plan and flag checks (the processes: tests/integration)."""

from __future__ import annotations

import pytest

from redshank.tools import cluster_cmd


def test_fixed_base_port_plan() -> None:
    # Kafka ports first, then each node's run of RPC ports (one per core).
    assert cluster_cmd.plan_ports(3, 2, 9092) == [(9092, 9095), (9093, 9097), (9094, 9099)]


def test_free_port_plan_is_distinct() -> None:
    plan = cluster_cmd.plan_ports(3, 2, 0)
    ports = [p for kafka, rpc in plan for p in (kafka, rpc, rpc + 1)]
    assert len(set(ports)) == len(ports) == 9
    # Below the kernel's ephemeral range: no outgoing connection can take one before the bind.
    assert max(ports) < cluster_cmd._ephemeral_low()


@pytest.mark.parametrize(("argv", "message"), [
    (["-n", "0"], "-n must be >= 1"),
    (["--cores", "0"], "--cores must be >= 1"),
    (["--base-port", "-1"], "--base-port -1: the ports needed pass 65535"),
    (["--base-port", "65530", "-n", "3", "--cores", "2"],
     "--base-port 65530: the ports needed pass 65535"),
])
def test_bad_flags(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cluster_cmd.main(argv) == 2
    assert capsys.readouterr().err == f"redshank cluster start: {message}\n"
