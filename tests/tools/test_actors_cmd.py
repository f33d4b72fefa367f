"""`redshank actors` reads a running node's per-core stats from outside it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redshank.actors.runtime import testkit
from redshank.actors.runtime.node_dir import NodeDir
from redshank.actors.runtime.node_stats import process_alive
from redshank.actors.runtime.supervisor import Supervisor
from redshank.tools import actors_cmd, top

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
        watched = capsys.readouterr().out
        assert watched.count("core 1  gen 1") == 2
        assert "msg/s" in watched and "actors by rate" in watched
    finally:
        sup.stop()


def test_no_running_node_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert actors_cmd.main(["--node-dir", str(tmp_path)]) == 1
    assert "no running node" in capsys.readouterr().err


def test_a_node_killed_with_sigkill_is_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its node.json and stats blocks outlive it: the processes say it is down (exit 1)."""
    node = tmp_path / "node"
    proc = subprocess.Popen(
        [sys.executable, "-m", "redshank.actors.runtime.supervisor", "--node-dir", str(node),
         "--cores", "2", "--setup", "redshank.actors.runtime.testkit:basic_setup"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:  # until both cores publish stats
            code = actors_cmd.main(["--node-dir", str(node), "--json"])
            out = capsys.readouterr().out
            if code == 0 and all("pid" in c for c in json.loads(out)["cores"]):
                break
            assert proc.poll() is None and time.monotonic() < deadline, out
            time.sleep(0.1)
        core_pids = [c["pid"] for c in json.loads(out)["cores"]]
        proc.kill()
        proc.wait(10)
        for pid in core_pids:  # the cores follow their supervisor (PR_SET_PDEATHSIG)
            while process_alive(pid):
                assert time.monotonic() < deadline + 10, f"core pid {pid} outlived the kill"
                time.sleep(0.05)
        assert NodeDir(node).segments(), "the stats blocks should have outlived the node"
        assert actors_cmd.main(["--node-dir", str(node)]) == 1
        err = capsys.readouterr().err
        assert "is down" in err and f"pid {proc.pid}" in err, err
        assert top.main(["--node-dir", str(node), "--once", "--interval", "0.01"]) == 1
        assert "is down" in capsys.readouterr().err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        NodeDir(node).remove_segments()
