"""The README opens with the two commands a newcomer runs; CI runs the test one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "README.md must open with a ```sh block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_start_and_test_commands() -> None:
    start, test = _readme_commands()[:2]
    assert start.endswith("redshank start")
    assert test.endswith("python3 -m pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test = _readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines, f"{test!r} not a line of .ci/run"
