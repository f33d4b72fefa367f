"""`redshank actors` reads a running node's per-core stats from outside it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from redshank.actors.runtime import testkit
from redshank.actors.runtime.supervisor import Supervisor
from redshank.tools import actors_cmd

pytestmark = pytest.mark.timeout(120)


def test_table_json_and_watch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sup = Supervisor(tmp_path / "node", 2, testkit.basic_setup)
    sup.start()
    try:
        sup.wait_ready(60)
        capsys.readouterr()  # the supervisor's own log lines
        deadline = time.monotonic() + 30
        while True:  # stats blocks are published every 0.5 s: wait for one listing the actors
            assert actors_cmd.main(["--node-dir", str(tmp_path / "node"), "--json"]) == 0
            stats = json.loads(capsys.readouterr().out.splitlines()[-1])
            if all(
                {"echo", "stats"} <= {a["name"] for a in c.get("actors", [])}
                for c in stats["cores"]
            ):
                break
            assert time.monotonic() < deadline, stats
            sup.poll(0.1)
        assert [c["core"] for c in stats["cores"]] == [0, 1]
        for core in stats["cores"]:
            assert [m["peer"] for m in core["mailboxes"]] == [1 - core["core"]]
            assert core["lost_wakeups"] == 0
        assert actors_cmd.main(["--node-dir", str(tmp_path / "node")]) == 0
        table = capsys.readouterr().out
        assert "core 0" in table and "core 1" in table and "echo" in table
        assert (
            actors_cmd.main(
                ["--node-dir", str(tmp_path / "node"), "--watch", "0.01", "--count", "2"]
            )
            == 0
        )
        assert capsys.readouterr().out.count("core 1  gen 1") == 2
    finally:
        sup.stop()


def test_no_running_node_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert actors_cmd.main(["--node-dir", str(tmp_path)]) == 1
    assert "no running node" in capsys.readouterr().err
