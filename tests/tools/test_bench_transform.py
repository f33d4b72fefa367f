"""`redshank bench transform` through the CLI at a tiny size: one JSON object with both sides (the
in-broker transform and the separate process), their backlog and steady figures and the ratios.
Values are not asserted (benchmarks measure, tests do not time); only that every record came
through and the broker's temp dir is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(150)
def test_bench_transform_prints_both_sides(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "redshank.tools.cli", "bench", "transform", "--records", "500",
         "--partitions", "2", "--rate", "200", "--seconds", "1", "--timeout", "60"],
        capture_output=True, text=True, timeout=140, env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bench"] == "transform" and result["records"] == 500
    assert result["identity"] == "forward"  # the in-broker identity forwards the record
    assert result["process_settings"]["producer"]["acks"] == "all"
    for side in ("process", "in_broker"):
        backlog, steady = result[side]["backlog"], result[side]["steady"]
        assert backlog["drained"] is True and backlog["output_records"] >= 500, backlog
        assert {"records_per_s", "startup_s", "cpu_us_per_record"} <= set(backlog), backlog
        assert steady["produced"] == 200 and steady["received"] == 200, steady
        assert {"p50_ms", "p99_ms", "input_p50_ms", "added_p50_ms"} <= set(steady), steady
    ratios = result["in_broker_vs_process"]
    assert {"throughput", "p50", "p99", "meets_targets"} <= set(ratios)
    assert list(tmp_path.iterdir()) == []  # the broker's and the transform's temp dirs are gone
