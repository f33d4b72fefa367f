"""Replays every interaction transcript in testdata/ and compares outputs line for line.

Regenerate after an intended change with `REDSHANK_REWRITE=1 python3 -m pytest tests/sim/
test_transcripts.py`, then review the diff of testdata/ like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from redshank.cluster.raft.sim.interaction import replay

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


def test_transcripts_exist() -> None:
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path) -> None:
    text = path.read_text()
    rewritten, diffs = replay(text)
    if os.environ.get("REDSHANK_REWRITE") == "1":
        path.write_text(rewritten)
        return
    assert not diffs, "\n\n".join(diffs)
