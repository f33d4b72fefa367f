"""`redshank topic`: help on every sub-command, offset specs (no broker needed here; the commands
against a real broker: tests/integration/test_cli_topics.py)."""

from __future__ import annotations

import pytest

from redshank.tools.cli import main
from redshank.tools.clikit import CliError
from redshank.tools.cmd_topic import topic
from redshank.tools.cmd_topic_io import Offsets, parse_offsets


def test_every_topic_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(topic.commands)
    assert names == ["add-partitions", "alter-config", "consume", "create", "delete",
                     "describe", "list", "produce", "trim-prefix"]
    for name in names:
        assert main(["topic", name, "--help"]) == 0, name
        assert "--brokers" in capsys.readouterr().out, name


@pytest.mark.parametrize(("text", "want"), [
    ("start", Offsets("start", None)),
    ("end", Offsets("end", None)),
    ("42", Offsets(42, None)),
    ("-3", Offsets(-3, None)),
    ("@1700000000000", Offsets("@1700000000000", None)),
    (":end", Offsets("start", "end")),
    ("5:10", Offsets(5, 10)),
    ("@17:end", Offsets("@17", "end")),
])
def test_offset_specs(text: str, want: Offsets) -> None:
    assert parse_offsets(text) == want


@pytest.mark.parametrize("text", ["soon", "1:later", "@x"])
def test_bad_offset_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(CliError) as err:
        parse_offsets(text)
    assert err.value.code == 2


def test_group_with_partition_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topic", "consume", "t", "-g", "g", "-p", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
