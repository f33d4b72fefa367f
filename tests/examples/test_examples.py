"""Each example in examples/ and the program in docs/embedding.md, run as written, checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env={**os.environ},
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_wordcount_counts_like_a_single_process() -> None:
    out = run(["examples/wordcount.py", "--cores", "2", "--lines", "5000"], ROOT)
    summary = out.strip().splitlines()[-1]
    assert re.fullmatch(r"words \d+ distinct 20 matches_single_process True", summary), out
    assert len(out.strip().splitlines()) == 6  # the top five, then the summary


def test_work_queue_resumes_at_the_committed_offset(tmp_path: Path) -> None:
    out = run(["examples/work_queue.py", "--dir", str(tmp_path / "q"), "--jobs", "10"], ROOT)
    assert out.splitlines() == [
        "first run did offsets [0, 1, 2, 3, 4]",
        "after restart did offsets [5, 6, 7, 8, 9]",
        "jobs 10 done 10 each_once True",
    ]


def test_the_documented_example_runs_as_written(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "embedding.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, re.S)
    program = next(body for lang, body in blocks if lang == "python")
    expected = next(body for lang, body in blocks if lang == "text")
    assert 15 <= len(program.strip().splitlines()) <= 25  # "a ~20-line complete example"
    (tmp_path / "example.py").write_text(program)
    assert run(["example.py"], tmp_path) == expected
