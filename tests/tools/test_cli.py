"""The `redshank` command's frame: help, version, exit codes, completion, passthrough commands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from redshank.tools.cli import COMMANDS, main


def test_no_arguments_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "Commands:" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("redshank ")


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_help_lists_every_command_without_importing_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name} " in out


def test_every_command_and_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name, (_target, about) in COMMANDS.items():
        assert main([name, "--help"]) == 0, name
        if isinstance(about, dict):
            for sub in about:
                assert main([name, sub, "--help"]) == 0, (name, sub)
    capsys.readouterr()


def test_argparse_command_keeps_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    # `redshank actors` on a directory with no node: its own message and exit 1, unchanged.
    assert main(["actors", "--node-dir", "/nonexistent-redshank-node"]) == 1
    assert "no running node" in capsys.readouterr().err


def test_shell_completion_through_the_installed_entry_point() -> None:
    env = dict(os.environ, _REDSHANK_COMPLETE="bash_complete", COMP_WORDS="redshank be",
               COMP_CWORD="1")
    done = subprocess.run([sys.executable, "-m", "redshank.tools.cli"], env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert "plain,bench" in done.stdout.splitlines()
