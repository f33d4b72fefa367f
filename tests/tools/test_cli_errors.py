"""A failure prints one clear line and a meaningful exit code, never a traceback (issue 15):
each case is a wrong argument, a missing directory or an unreachable node, as a new user types
it. No broker runs (the `--loop-slice-us` case starts one that refuses the flag at once)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from redshank.tools.cli import main

CASES = [
    # (argv, exit code, what the last line of stderr says)
    (["sim", "--seeds", "-1"], 2, "--seeds must be at least 1"),
    (["sim", "--jobs", "0"], 2, "--jobs must be at least 1"),
    (["bench", "produce", "--cores", "0"], 2, "--cores must be at least 1"),
    (["bench", "consume", "--partitions", "x"], 2, "comma-separated list of counts"),
    (["bench", "e2e", "--seconds", "0"], 2, "--seconds must be positive"),
    (["bench", "catchup", "--bytes", "0"], 2, "--bytes must be at least"),
    (["bench", "storage", "--dir", "/nope"], 2, "--dir /nope: no such directory"),
    (["bench", "codec", "--number", "0"], 2, "must be at least 1"),
    (["bench", "records", "--nope"], 2, "unrecognized arguments: --nope"),
    (["bench", "copies", "--size", "0"], 2, "--size must be at least 1"),
    (["bench", "produce", "--loop-slice-us", "-5", "--partitions", "1", "--no-baseline"], 1,
     "bench: redshank did not start: redshank start: --loop-slice-us must be in"),
    (["cluster", "status", "--node-dir", "/nope"], 1, "no controller view in /nope"),
    (["top", "--node-dir", "/nope"], 1, "no running node in /nope"),
    (["top", "--admin-url", "notaurl"], 1, "expected http://HOST:PORT"),
    (["top", "--admin-url", "http://127.0.0.1:x"], 1, "expected http://HOST:PORT"),
    (["cluster", "status", "--node-dir", "/etc/passwd"], 1, "no controller view in"),
    (["start", "--kafka-addr", "bad"], 2, "expected HOST:PORT, got 'bad'"),
    (["topic", "list", "--brokers", "127.0.0.1:1", "--timeout", "2"], 3,
     "cannot reach a broker at 127.0.0.1:1"),
]


@pytest.fixture(autouse=True)
def _keep_structlog() -> Iterator[None]:
    saved = structlog.get_config()  # sim and bench storage configure it for their run
    yield
    structlog.configure(**saved)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("argv", "code", "says"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_failure_is_one_line_and_an_exit_code(argv: list[str], code: int, says: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert says in last, err
