"""kcat (Debian package, 1.7.1 on librdkafka 2.0.2) against a real broker: it cannot skip tagged
fields correctly (G2), so it checks our codec emits none it does not need. Lists metadata, produces
lines (plain and snappy), consumes them back exactly, and consumes in a group.

kcat is required: install it with `apt-get install -y kcat`. A missing kcat fails, never skips."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from broker_proc import BrokerProcess, create_topic

TIMEOUT = 30.0


def _kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed: run `apt-get install -y kcat` (Debian package)")
    return path


def _run(args: list[str], stdin: bytes | None = None) -> str:
    proc = subprocess.run([_kcat(), *args], input=stdin, capture_output=True, timeout=TIMEOUT,
                          check=False)
    assert proc.returncode == 0, (
        f"kcat {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def _lines(prefix: str, n: int) -> list[str]:
    return [f"{prefix} line {i} " + "y" * (i % 37) for i in range(n)]


@pytest.mark.timeout(60)
def test_kcat_lists_metadata(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "kc-meta", 3)
    out = _run(["-b", broker.bootstrap, "-L", "-t", "kc-meta"])
    host, port = broker.bootstrap.rsplit(":", 1)
    assert f"at {host}:{port}" in out, out
    assert 'topic "kc-meta" with 3 partitions' in out, out
    for p in range(3):
        assert f"partition {p}, leader" in out, out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", ["none", "snappy"])
def test_kcat_produces_and_consumes_exactly(broker: BrokerProcess, codec: str) -> None:
    topic = f"kc-lines-{codec}"
    create_topic(broker.bootstrap, topic, 1)
    lines = _lines(topic, 300)
    _run(["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-X",
          f"compression.codec={codec}"], stdin=("\n".join(lines) + "\n").encode())
    out = _run(["-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                "-f", "%o %s\\n"])
    got = out.splitlines()
    assert got == [f"{i} {line}" for i, line in enumerate(lines)]


@pytest.mark.timeout(90)
def test_kcat_consumes_in_a_group(broker: BrokerProcess) -> None:
    topic = "kc-group"
    create_topic(broker.bootstrap, topic, 2)
    lines = _lines(topic, 100)
    for p in range(2):
        part = lines[p::2]
        _run(["-b", broker.bootstrap, "-P", "-t", topic, "-p", str(p)],
             stdin=("\n".join(part) + "\n").encode())
    # -G: balanced consumer group; -e exits once every assigned partition reached its end;
    # auto.offset.reset=earliest because the group has no committed offsets yet.
    out = _run(["-b", broker.bootstrap, "-G", "kc-group-g", "-e", "-X",
                "auto.offset.reset=earliest", "-f", "%p %s\\n", topic])
    got = sorted(out.splitlines())
    assert got == sorted(f"{i % 2} {line}" for i, line in enumerate(lines))
