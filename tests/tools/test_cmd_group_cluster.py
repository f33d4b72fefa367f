"""`redshank group` and `redshank cluster`: every sub-command answers --help, and bad usage
exits 2 before anything is sent (no broker needed)."""

from __future__ import annotations

import click
import pytest

from redshank.tools.cli import main
from redshank.tools.cmd_cluster import cluster
from redshank.tools.cmd_group import group


def _paths(cmd: click.Command, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    out = [prefix]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out.extend(_paths(sub, (*prefix, name)))
    return out


def test_every_sub_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    paths = _paths(group, ("group",)) + _paths(cluster, ("cluster",))
    assert ("cluster", "config", "set") in paths and ("group", "seek") in paths
    for path in paths:
        assert main([*path, "--help"]) == 0, path
    capsys.readouterr()


@pytest.mark.parametrize("args", [
    ["group", "seek", "g", "--to", "yesterday"],
    ["group", "seek", "g", "--to", "-3"],
    ["group", "seek", "g"],
    ["group", "describe"],
    ["cluster", "transfer-leadership", "t", "0"],
    ["cluster", "transfer-leadership", "t", "-1", "--to", "1"],
])
def test_bad_usage_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, "-X", "127.0.0.1:1", "--timeout", "0.1"]) == 2
    assert "Error" in capsys.readouterr().err
