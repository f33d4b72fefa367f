"""`redshank transaction`: every sub-command answers --help, bad usage exits 2 before anything is
sent, and an unreachable broker exits 3 with one line (no broker needed). The commands against a
real broker: tests/integration/test_cli_txn.py."""

from __future__ import annotations

import pytest

from redshank.tools.cli import main


@pytest.mark.parametrize("path", [(), ("list",), ("describe",), ("producers",)])
def test_every_sub_command_has_help(path: tuple[str, ...],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transaction", *path, "--help"]) == 0
    assert "Usage: redshank transaction" in capsys.readouterr().out


@pytest.mark.parametrize("args", [
    ["transaction", "describe"],
    ["transaction", "producers"],
    ["transaction", "producers", "t", "-p", "-1"],
    ["transaction", "producers", "t", "-p", "one"],
])
def test_bad_usage_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, "-X", "127.0.0.1:1", "--timeout", "1"]) == 2
    assert "Error" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["transaction", "list"],
    ["transaction", "describe", "some-id"],
    ["transaction", "producers", "t"],
])
def test_unreachable_broker_exits_3(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, "-X", "127.0.0.1:1", "--timeout", "1"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("redshank: cannot reach a broker"), err
