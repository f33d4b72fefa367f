"""`redshank start` as a process: the ready line, refusing a used data dir or port with a clear
message, each core's loop thread on short scheduler slices when asked (`--loop-slice-us`; the
kernel's by default) and its other threads (the disk writer) on the default, clean exit on
SIGTERM, and data that survives a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from broker_proc import BrokerProcess, check_consumed, expected_records
from confluent_kafka import Producer
from test_confluent_kafka import consume_assigned

from redshank.protocol.record_batch import iter_batches


def _run_start(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redshank.tools.cli", "start",
                           "--admin-addr", "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_lifecycle_busy_refusals_sigterm_and_restart(tmp_path: Path) -> None:
    # Short slices are off by default; asked for, the loop thread (only) gets them.
    node = BrokerProcess(tmp_path / "data", cores=1, extra_args=("--loop-slice-us", "100"))
    node.start()
    try:
        assert node.ready_line.startswith("redshank ready kafka=127.0.0.1:")
        assert "cores=1" in node.ready_line
        assert " rpc=" not in node.ready_line  # no --rpc-addr: no RPC listener, no peers
        identity = json.loads((node.data_dir / "cluster" / "node_identity.json").read_text())
        assert identity["node_id"] == 0 and identity["seeds"] == []
        assert not (node.data_dir / "cluster" / "peers.json").exists()
        port = node.bootstrap.rsplit(":", 1)[1]

        same_dir = _run_start(["--kafka-addr", "127.0.0.1:0", "--data-dir", str(node.data_dir),
                               "--cores", "1"])
        assert same_dir.returncode == 2, same_dir.stderr[-2000:]
        assert "is used by a running node" in same_dir.stderr

        same_port = _run_start(["--kafka-addr", f"127.0.0.1:{port}", "--data-dir",
                                str(tmp_path / "other"), "--cores", "1"])
        assert same_port.returncode == 2, same_port.stderr[-2000:]
        assert f"cannot listen on 127.0.0.1:{port}" in same_port.stderr

        topic = "survives-restart"
        expected = expected_records(topic, 1, 50)
        producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all"})
        for key, value in expected[0]:
            producer.produce(topic, key=key, value=value, partition=0)
        assert producer.flush(20) == 0
        _assert_loop_slices(node.data_dir)
    finally:
        code = node.stop()
    assert code == 0, f"SIGTERM exit code {code}; log:\n{node.log_tail()}"
    _assert_segments_sealed(tmp_path / "data")

    again = BrokerProcess(tmp_path / "data", cores=1)
    again.start()
    try:
        check_consumed(expected, consume_assigned(again.bootstrap, topic, 1, 50))
        _assert_default_slices(again.data_dir)
    finally:
        assert again.stop() == 0


def _assert_loop_slices(data_dir: Path) -> None:
    """Every core's loop (its main thread) asked for 100 us slices (`--loop-slice-us 100`); the
    threads started after it (the disk writer, which has fdatasynced by now) went back to the
    kernel's default."""
    for pid in json.loads((data_dir / "node.json").read_text())["pids"]:
        slices = {int(tid): _slice_ns(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}
        assert slices.pop(pid) == 100_000, slices
        assert slices and 100_000 not in slices.values(), slices


def _assert_default_slices(data_dir: Path) -> None:
    """Without `--loop-slice-us` no thread of a core asks for a slice: all have the kernel's."""
    for pid in json.loads((data_dir / "node.json").read_text())["pids"]:
        slices = {int(tid): _slice_ns(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}
        assert len(slices) > 1 and len(set(slices.values())) == 1, slices
        assert 100_000 not in slices.values(), slices


def _slice_ns(pid: int, tid: int) -> int:
    for line in Path(f"/proc/{pid}/task/{tid}/sched").read_text().splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    raise AssertionError(f"no se.slice for thread {tid} of {pid}")


def _assert_segments_sealed(data_dir: Path) -> None:
    """A clean stop flushes and seals every log: each segment file holds whole valid batches
    and nothing else (the pre-allocated tail is trimmed), so a restart needs no recovery scan."""
    segments = sorted(data_dir.glob("kafka/*/*.log"))
    assert segments, f"no segments under {data_dir}"
    for segment in segments:
        data = segment.read_bytes()
        walked = sum(header.size for _pos, header in iter_batches(data))
        assert walked == len(data) > 0, f"{segment}: {len(data)} bytes, {walked} in batches"
