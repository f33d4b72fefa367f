"""Real core processes: order and integrity across wrap-around, backpressure, wake-ups, a killed
core, the supervisor stopped or killed. Nothing leaks: every test checks its own node's /dev/shm
segments (unique prefix per node directory) and its own core pids."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redshank.actors.runtime import testkit
from redshank.actors.runtime.control_block import ControlBlock
from redshank.actors.runtime.node_dir import NodeBusyError, NodeDir
from redshank.actors.runtime.supervisor import Supervisor

pytestmark = pytest.mark.timeout(120)


def pid_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status  # a zombie waiting for its (new) parent to reap it


def wait_until(
    cond: Callable[[], bool],
    timeout: float,
    poll: Callable[[], None] | None = None,
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if poll is not None:
            poll()
        else:
            time.sleep(0.01)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Callable[..., Supervisor]]:
    started: list[Supervisor] = []

    def start(scenario: str, params: dict[str, Any], ncores: int = 2, **kw: Any) -> Supervisor:
        setup = functools.partial(testkit.scenario_setup, name=scenario, params=params)
        sup = Supervisor(tmp_path / "node", ncores, setup, **kw)
        started.append(sup)
        sup.start()
        sup.wait_ready(60)
        return sup

    yield start
    for sup in started:
        pids = [sup.pid(c) for c in range(sup.ncores)]
        sup.stop()
        assert sup.node.segments() == []
        assert all(pid is None or pid_gone(pid) for pid in pids)


def result(sup: Supervisor, name: str, timeout: float = 60.0) -> dict[str, Any]:
    path = sup.node.path / f"{name}.json"
    wait_until(path.exists, timeout, lambda: sup.poll(0.02), name)
    data: dict[str, Any] = json.loads(path.read_text())
    assert "failed" not in data, data
    return data


def test_frames_cross_cores_in_order_across_wraparound(node: Callable[..., Supervisor]) -> None:
    params = {"count": 6000, "seed": 11, "max_size": 3000}
    sup = node("order", params, ring_capacity=1 << 14)
    for core in range(2):  # both directions at once, through 16 KiB rings: ~1000 wrap-arounds
        got = result(sup, f"result-order-{core}")
        assert got["received"] == params["count"]
        assert got["errors"] == []
        assert got["bytes"] > 500 * (1 << 14)


def test_full_ring_makes_the_sender_wait_and_drops_nothing(node: Callable[..., Supervisor]) -> None:
    params = {"count": 400, "seed": 3, "max_size": 2000}
    sup = node("backpressure", params, ring_capacity=1 << 14)
    consumer = sup.pid(1)
    assert consumer is not None
    os.kill(consumer, signal.SIGSTOP)
    try:
        (sup.node.path / "go").touch()
        phase1 = result(sup, "phase1")
        assert phase1["pending"] > 0  # the ring filled: those tells wait, none was dropped
    finally:
        os.kill(consumer, signal.SIGCONT)
    got = result(sup, "result-backpressure")
    assert got["received"] == params["count"]
    assert got["errors"] == []


def test_no_lost_wakeups_when_both_cores_sleep_between_asks(
    node: Callable[..., Supervisor],
) -> None:
    params = {"count": 300, "gap_s": 0.002}
    sup = node("pingpong", params, spin_s=0.0001)
    got = result(sup, "result-pingpong")
    assert got["answered"] == params["count"]
    caller, callee = got["stats"]
    assert caller["lost_wakeups"] == 0 and callee["lost_wakeups"] == 0
    assert callee["sleeps"] >= params["count"] // 2  # it really slept between asks...
    assert caller["doorbells_rung"] >= params["count"] // 2  # ...and was woken by a doorbell


def test_the_lost_wakeup_check_catches_a_missing_doorbell(
    node: Callable[..., Supervisor],
) -> None:
    # Negative control: producers that never ring. The idle check still delivers (slowly) and
    # counts every wake-up that was lost, so the test above would catch a broken handshake.
    params = {"count": 10, "gap_s": 0.002, "no_doorbell": True}
    sup = node("pingpong", params, spin_s=0.0001, idle_check_s=0.02)
    got = result(sup, "result-pingpong")
    assert got["answered"] == params["count"]
    assert sum(s["lost_wakeups"] for s in got["stats"]) >= params["count"]


def test_killed_core_restarts_and_its_callers_get_errors(node: Callable[..., Supervisor]) -> None:
    sup = node("kill", {"count": 10})
    result(sup, "phase1")
    victim = sup.pid(1)
    assert victim is not None
    sup.kill_core(1)
    got = result(sup, "result-kill")
    assert got["errors"] == ["CoreDiedError core=1"] * 10
    assert (got["first_gen"], got["second_gen"]) == (1, 2)
    assert got["after_restart"] == "hi"
    assert sup.restarts == 1 and sup.generation(1) == 2
    assert pid_gone(victim)
    rings = {n for n in sup.node.segments() if n.startswith(f"/{sup.node.prefix}-r")}
    assert rings == {sup.node.ring_name(0, 1, 1, 2), sup.node.ring_name(1, 0, 2, 1)}  # old: gone


def test_two_phase_requests_across_processes(node: Callable[..., Supervisor]) -> None:
    sup = node("two_phase", {"count": 500, "keys": 4, "seed": 5})
    got = result(sup, "result-two_phase")
    assert got == {"in_order": True, "acked_before_sequenced": 0, "total": 500}


def test_one_supervisor_per_node_directory(node: Callable[..., Supervisor], tmp_path: Path) -> None:
    node("order", {"count": 1, "seed": 1, "max_size": 10})
    with pytest.raises(NodeBusyError):
        Supervisor(tmp_path / "node", 1).start()


def _start_supervisor_process(node_dir: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redshank.actors.runtime.supervisor",
            "--node-dir",
            str(node_dir),
            "--cores",
            "2",
            "--setup",
            "redshank.actors.runtime.testkit:basic_setup",
        ],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nd = NodeDir(node_dir)
    wait_until(lambda: nd.read_info() is not None, 60, what="node.json")
    control = ControlBlock(nd.control_name(), 2, read_only=True)
    try:
        wait_until(lambda: control.ready(0) and control.ready(1), 60, what="cores ready")
        pids = [control.pid(0), control.pid(1)]
    finally:
        control.close()
    return proc, pids


def test_supervisor_sigterm_stops_everything(tmp_path: Path) -> None:
    proc, pids = _start_supervisor_process(tmp_path / "node")
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    nd = NodeDir(tmp_path / "node")
    assert all(pid_gone(pid) for pid in pids)
    assert nd.segments() == []
    assert nd.read_info() is None


def test_supervisor_sigkill_leaves_nothing_after_the_next_start(tmp_path: Path) -> None:
    proc, pids = _start_supervisor_process(tmp_path / "node")
    proc.kill()
    proc.wait(30)
    wait_until(lambda: all(pid_gone(pid) for pid in pids), 30, what="cores to die with it")
    nd = NodeDir(tmp_path / "node")
    assert nd.segments() != []  # stale: nobody could unlink them
    sup = Supervisor(tmp_path / "node", 2, testkit.basic_setup)
    sup.start()
    try:
        assert sup.stale_removed >= 3
        sup.wait_ready(60)
    finally:
        sup.stop()
    assert nd.segments() == []


def test_a_core_freezes_its_startup_objects(node: Callable[..., Supervisor]) -> None:
    """Once set up, a core's startup objects are out of the cyclic collector's view (a full
    collection no longer walks them): most of what is tracked is frozen."""
    data = result(node("gc", {}, ncores=1), "result-gc")
    assert data["frozen"] > 10_000 and data["frozen"] > 4 * data["tracked"], data
