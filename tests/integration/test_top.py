"""`redshank top` in a real terminal (tmux) against a real broker under a produce load.

The screen is read with `tmux capture-pane -p` until the actors table shows the loaded topic's
partition actors with a non-zero messages-per-second rate (bounded polling). The tmux server runs
on its own socket and is killed at the end; the broker is the session's shared one.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

import pytest
from broker_proc import BrokerProcess, create_topic

from redshank.tools.top import FILLING

pytestmark = pytest.mark.timeout(150)

TOPIC = "top-load"
_SUFFIX = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}
_MARK = rf"(?:{FILLING}\s+)?"  # a filling inbox's marker, right after its depth


def _load(bootstrap: str, stop: threading.Event, counts: list[int]) -> None:
    """At most 60 s and 300k records, paced, until `stop`."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "queue.buffering.max.messages": 20000})
    deadline = time.monotonic() + 60
    sent = 0
    while not stop.is_set() and time.monotonic() < deadline and sent < 300_000:
        try:
            producer.produce(TOPIC, b"v" * 200, key=str(sent).encode())
            sent += 1
        except BufferError:
            producer.poll(0.05)
        if sent % 200 == 0:
            producer.poll(0)
            time.sleep(0.01)
    producer.flush(15)
    counts.append(sent)


def _partition_rates(screen: str) -> dict[str, float]:
    """msg/s of each `partition/top-load/N` row of the actors table on the screen."""
    rates = {}
    row = rf"^\s*\d+\s+(partition/{TOPIC}/\d+)\s+\d+\s+{_MARK}([\d.]+)([kMG]?)\s"
    for m in re.finditer(row, screen, re.M):
        rates[m.group(1)] = float(m.group(2)) * _SUFFIX[m.group(3)]
    return rates


def _actor_rates(screen: str) -> list[float]:
    """msg/s of every row of the actors table, top to bottom (`-`, not known yet: 0)."""
    section = screen.split("actors (busiest first", 1)[1].split("busiest partitions", 1)[0]
    return [float(m.group(1)) * _SUFFIX[m.group(2)] if m.group(1) else 0.0
            for m in re.finditer(rf"^\s*\d+\s+\S+\s+\d+\s+{_MARK}(?:([\d.]+)([kMG]?)|-)\s",
                                 section, re.M)]


def _tmux(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", *args], capture_output=True,
                          text=True, timeout=10, check=False)


def test_top_shows_actor_rows_and_rates_under_load(broker: BrokerProcess) -> None:
    assert shutil.which("tmux"), "tmux is missing: .ci/system-deps installs it"
    create_topic(broker.bootstrap, TOPIC, 2)
    stop = threading.Event()
    counts: list[int] = []
    loader = threading.Thread(target=_load, args=(broker.bootstrap, stop, counts), daemon=True)
    loader.start()
    sock = f"redshank-top-test-{os.getpid()}"
    top = [sys.executable, "-m", "redshank.tools.top", "--node-dir", str(broker.data_dir),
           "--interval", "0.5", "--rows", "15"]
    # The pane stays after top exits, so a failure's message is on the screen to read.
    shell = f"{shlex.join(top)}; echo top-exited-$?; sleep 120"
    env = {**os.environ, "TERM": "xterm-256color"}
    started = subprocess.run(
        ["tmux", "-L", sock, "-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "200",
         "-y", "70", shell], env=env, capture_output=True, text=True, timeout=10, check=False)
    assert started.returncode == 0, started.stderr
    screen = ""
    try:
        deadline = time.monotonic() + 45
        previous = None
        while True:
            screen = _tmux(sock, "capture-pane", "-p", "-t", "top").stdout
            rates = _partition_rates(screen)
            # Two equal captures in a row: a whole frame, not one caught while being redrawn.
            stable, previous = screen == previous, screen
            if (stable and rates and max(rates.values()) > 0 and "disk-writer" in screen
                    and re.search(r"^\s*1\s+\d+\s+1\s+\d+s", screen, re.M)):
                break
            assert "top-exited" not in screen, screen
            assert time.monotonic() < deadline, f"no partition rates on the screen:\n{screen}"
            time.sleep(0.25)
        assert "redshank top" in screen and "actors (busiest first, by rate)" in screen
        assert re.search(r"^\s*0\s+\d+\s+1\s+\d+s", screen, re.M), screen  # core 0's row
        assert "busiest partitions" in screen
        rows = _actor_rates(screen)  # the busiest first
        assert len(rows) >= 4 and rows == sorted(rows, reverse=True), screen
    finally:
        stop.set()
        loader.join(30)
        _tmux(sock, "kill-server")
    assert counts and counts[0] > 0
