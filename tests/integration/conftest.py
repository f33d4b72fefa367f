"""Integration-test helpers: real `redshank start` processes on loopback (see broker_proc.py).

Makes `broker_proc` importable by the tests here and provides `broker`, one two-core broker
shared by the client tests of a session (started on a free port with a temporary data dir,
always stopped at the end)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from broker_proc import BrokerProcess  # noqa: E402


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", cores=2)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
