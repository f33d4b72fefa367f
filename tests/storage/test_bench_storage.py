"""`redshank bench storage --quick` runs through the CLI, cleans up its files, and prints one
JSON object with every figure the issue asks for (values are not asserted: benchmarks measure,
tests do not time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_quick_bench_prints_one_json_object(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "redshank.tools.cli", "bench", "storage", "--quick",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["append_flush"]) == {"16KiB", "256KiB", "1MiB"}
    for row in result["append_flush"].values():
        assert {"log_mb_s", "raw_mb_s", "ratio"} <= set(row) and row["raw_mb_s"] > 0
    assert {"cache_mb_s", "disk_mb_s", "evicted_mb_s"} <= set(result["read"])
    assert all({"after_crash_mb_s", "page_cache_mb_s", "cold_mb_s"} <= set(r)
               for r in result["recovery_scan"].values())
    assert result["index_lookup"]["offset_lookup_us"] > 0
    assert list(tmp_path.iterdir()) == []  # its temporary directory is gone
