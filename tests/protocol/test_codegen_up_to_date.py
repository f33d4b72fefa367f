"""The committed `protocol/messages/` is exactly what the generator writes from the specs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from redshank.tools.codegen.generate import DEFAULT_OUT, default_spec_dir, generate

REPO = Path(__file__).resolve().parents[2]


def test_generated_messages_match_the_specs(tmp_path: Path) -> None:
    spec_dir = default_spec_dir()
    if not spec_dir.is_dir():
        pytest.fail(
            f"Kafka spec directory {spec_dir} is missing: the clone needs ../shared/kafka-spec/3.9 "
            "beside it (or set REDSHANK_KAFKA_SPEC); cannot check the generated codec"
        )
    generate(spec_dir, tmp_path)
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_text() for p in DEFAULT_OUT.iterdir() if p.is_file()}
    assert sorted(committed) == sorted(fresh), "files differ: run python3 -m redshank.tools.codegen"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], f"stale generated files {stale}: run python3 -m redshank.tools.codegen"


def test_command_line_entry_point_writes_the_modules(tmp_path: Path) -> None:
    out = tmp_path / "messages"
    done = subprocess.run(
        [sys.executable, "-m", "redshank.tools.codegen", "--spec-dir", str(default_spec_dir()),
         "--out", str(out)],
        env=dict(os.environ), capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "produce.py").is_file() and (out / "request_header.py").is_file()


def test_missing_spec_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="REDSHANK_KAFKA_SPEC"):
        generate(tmp_path / "nope", tmp_path / "out")
