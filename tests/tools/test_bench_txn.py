"""`redshank bench produce --transactional` through the CLI with tiny bounds: one broker, one
JSON object with the idempotent figure and each transaction size's figures and ratio (values
not asserted: benchmarks measure, tests do not time), and no temp dir left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(120)
def test_transactional_bench_prints_one_json_object(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "redshank.tools.cli", "bench", "produce", "--transactional",
         "--messages", "2000", "--seconds", "2", "--partitions", "1", "--txn-sizes", "100,1000"],
        capture_output=True, text=True, timeout=110, env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(tmp_path.iterdir()) == []  # the broker's temp dir is gone
    row = result["partitions_1"]
    assert row["idempotent"]["produced"] > 0 and "transactions" not in row["idempotent"]
    for size in (100, 1000):
        txn = row[f"txn_{size}"]
        # Bounded by --seconds too: a loaded machine may commit fewer, never a partial one.
        assert txn["transactions"] >= 1 and txn["failed"] == 0
        assert txn["produced"] == txn["transactions"] * size
        assert {"msg_per_s", "txn_per_s", "broker_cpu_us_per_msg"} <= set(txn)
        assert f"txn_{size}_vs_idempotent" in row


def test_bad_transactional_flags_are_usage_errors() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "redshank.tools.cli", "bench", "produce", "--transactional",
         "--txn-sizes", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage" in proc.stderr
