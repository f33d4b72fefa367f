"""`configure_logging`: one record per line with several processes on one stderr, the format and
level a supervisor hands its cores through the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

# A "core": configure_logging(core) as core_main does, then records of mixed sizes, fast.
_CHILD = """
import sys, structlog
from redshank.actors.runtime.log_setup import configure_logging
configure_logging(int(sys.argv[1]))
log = structlog.get_logger()
for n in range(400):
    log.info("record", n=n, pad="x" * (n % 7 * 500 if sys.argv[2] == "big" else n % 50))
log.debug("hidden_at_info")
"""


def _run_cores(stderr: int, size: str, env: dict[str, str], n: int = 4) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(c), size], stderr=stderr,
                              env=env) for c in range(n)]
    for p in procs:
        assert p.wait(30) == 0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDSHANK_LOG_")}
    return {**env, **extra}


def _check_json_lines(text: str, cores: int = 4) -> None:
    lines = text.splitlines()
    records = [json.loads(line) for line in lines]  # each line exactly one record
    assert len(records) == 400 * cores
    assert {r["core"] for r in records} == set(range(cores))
    assert "hidden_at_info" not in text


def test_one_record_per_line_on_a_shared_file(tmp_path: Path) -> None:
    # One open file (one offset) shared by every process, as a shell's `2>log` gives them.
    with open(tmp_path / "log", "wb") as f:
        _run_cores(f.fileno(), "big", _env())
    _check_json_lines((tmp_path / "log").read_text())


def test_one_record_per_line_on_a_shared_pipe() -> None:
    # Records up to PIPE_BUF (4096 bytes) are atomic on a pipe (see log_setup.py).
    r, w = os.pipe()
    with open(r, "rb") as reader:
        try:
            procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(c), "small"], stderr=w,
                                      env=_env()) for c in range(4)]
        finally:
            os.close(w)
        data = reader.read()
    for p in procs:
        assert p.wait(30) == 0
    _check_json_lines(data.decode())


def test_format_and_level_from_the_environment(tmp_path: Path) -> None:
    with open(tmp_path / "log", "wb") as f:
        _run_cores(f.fileno(), "small",
                   _env(REDSHANK_LOG_FORMAT="console", REDSHANK_LOG_LEVEL="debug"), n=1)
    lines = (tmp_path / "log").read_text().splitlines()
    assert len(lines) == 401 and not any(line.startswith("{") for line in lines)
    assert "hidden_at_info" in lines[-1] and "record" in lines[0] and "core=0" in lines[0]
    with open(tmp_path / "log2", "wb") as f:
        _run_cores(f.fileno(), "small", _env(REDSHANK_LOG_LEVEL="warning"), n=1)
    assert (tmp_path / "log2").read_text() == ""


def test_the_supervisor_hands_its_settings_on() -> None:
    script = ("import os; from redshank.actors.runtime.log_setup import configure_logging; "
              "configure_logging(None, 'warning', 'console'); "
              "print(os.environ['REDSHANK_LOG_LEVEL'], os.environ['REDSHANK_LOG_FORMAT'])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, env=_env(), check=True).stdout
    assert out.split() == ["warning", "console"]
