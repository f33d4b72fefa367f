"""`redshank start --log-format console --log-level ...`: every core logs alike; more cores than
CPUs starts with a warning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from broker_proc import BrokerProcess

pytestmark = pytest.mark.timeout(120)


def test_console_logs_from_every_core_and_the_cores_warning(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0)) + 1
    env_before = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("REDSHANK_LOG")}
    broker = BrokerProcess(tmp_path / "data", cores=cores,
                           extra_args=("--log-format", "console", "--log-level", "info"))
    try:
        broker.start()
        assert broker.stop() == 0
    finally:
        broker.kill()
        os.environ.update(env_before)
    lines = broker.log_path.read_text().splitlines()
    assert lines and not [line for line in lines if line.lstrip().startswith("{")], lines[:5]
    warnings = [line for line in lines if "cores_exceed_cpus" in line]
    assert len(warnings) == 1 and "warn" in warnings[0] and f"cores={cores}" in warnings[0]
    for core in range(cores):  # the cores got the supervisor's format
        assert any("core_started" in line and f"core={core}" in line for line in lines), core
