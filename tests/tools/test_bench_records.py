"""`redshank bench records --quick` prints one JSON object whose produce_check gives, for each
codec, the cost of the produce path's batch check next to its same-run baseline."""

from __future__ import annotations

import json

import pytest

from redshank.tools.bench import records


def test_records_bench_reports_the_produce_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert records.main(["--quick"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    check = result["produce_check"]
    assert set(check) == {"none", "lz4", "zstd"}
    for figures in check.values():  # figures only: the bench judges nothing
        assert figures["check_records_us_per_record"] > 0
        assert figures["baseline_header_crc_us_per_record"] > 0
        assert "walk_us_per_record" in figures
