"""`redshank topic ...` against one real broker (two cores), driven as a user would: in-process
through `cli.main` for most commands, and as `python3 -m redshank.tools.cli` subprocesses for
produce/consume pipes and the error paths (exit code, one line on stderr, no traceback).

A topic's life: create, list, describe, alter-config (visible in describe), produce lines with
keys and headers, consume them back with a format string and `-n`, consume in a group (the
offsets committed, read back with confluent-kafka), add-partitions, trim-prefix (log start
moves), delete. Errors: a missing topic exits 4, an unreachable broker exits 3 within its
--timeout, an invalid config exits 1 naming Kafka's error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from broker_proc import BrokerProcess, free_port
from confluent_kafka import Consumer, TopicPartition

from redshank.tools.cli import main

# Each CLI call waits at most --timeout (5 s, 2 s when nothing listens) per step; the subprocess
# bound is the backstop.
CALL_TIMEOUT = 60


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("cli-topics") / "data", cores=2)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def run(node: BrokerProcess | None, *args: str, stdin: bytes = b"",
        brokers: str | None = None, timeout: float = 5) -> subprocess.CompletedProcess[bytes]:
    """`redshank topic ARGS` as a child process (PYTHONPATH passed through)."""
    addr = brokers or (node.bootstrap if node else "")
    return subprocess.run(
        [sys.executable, "-m", "redshank.tools.cli", "topic", *args, "--brokers", addr,
         "--timeout", str(timeout)],
        input=stdin, capture_output=True, timeout=CALL_TIMEOUT, env=dict(os.environ),
        check=False)


def cli(node: BrokerProcess, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`redshank topic ARGS` in this process: (exit code, stdout)."""
    code = main(["topic", *args, "--brokers", node.bootstrap, "--timeout", "5"])
    out, err = capsys.readouterr()
    assert code == 0 or err, "a failure must say why"
    return code, out


def cli_json(node: BrokerProcess, capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code, out = cli(node, capsys, *args, "--json")
    assert code == 0, out
    return json.loads(out)


def describe(node: BrokerProcess, capsys: pytest.CaptureFixture[str], name: str
             ) -> dict[str, object]:
    doc = cli_json(node, capsys, "describe", name)
    assert isinstance(doc, dict)
    return doc


def one_line_error(done: subprocess.CompletedProcess[bytes]) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("redshank: "), err
    return err


def test_create_list_describe_and_alter_config(node: BrokerProcess,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(node, capsys, "create", "life", "-p", "2", "-c", "retention.ms=3600000")[0] == 0
    listed = cli_json(node, capsys, "list")
    assert {"name": "life", "partitions": 2, "replicas": 1} in listed  # type: ignore[operator]

    doc = describe(node, capsys, "life")
    configs = {c["name"]: c for c in doc["configs"]}  # type: ignore[attr-defined]
    assert configs["retention.ms"] == {"name": "retention.ms", "value": "3600000",
                                       "source": "DYNAMIC_TOPIC_CONFIG"}
    assert [p["partition"] for p in doc["partitions"]] == [0, 1]  # type: ignore[attr-defined]

    code, _ = cli(node, capsys, "alter-config", "life", "--set", "cleanup.policy=compact",
                  "--delete", "retention.ms")
    assert code == 0
    configs = {c["name"]: c for c in describe(node, capsys, "life")["configs"]}  # type: ignore[attr-defined]
    assert (configs["cleanup.policy"]["value"], configs["cleanup.policy"]["source"]) == (
        "compact", "DYNAMIC_TOPIC_CONFIG")
    # Unset, retention.ms is the broker's own default (keep everything), which differs from
    # Kafka's 7 days: described as a static broker config, as Kafka describes server.properties.
    assert configs["retention.ms"]["source"] == "STATIC_BROKER_CONFIG"
    # And for people: the table shows the altered value and where it comes from.
    code, text = cli(node, capsys, "describe", "life")
    assert code == 0
    assert any(line.split() == ["cleanup.policy", "compact", "DYNAMIC_TOPIC_CONFIG"]
               for line in text.splitlines()), text


def test_produce_then_consume_with_a_format_and_n(node: BrokerProcess,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(node, capsys, "create", "lines", "-p", "1")[0] == 0
    lines = b"k1 app=a,trace=1 first value\nk2 app=b second\n  no key, no header\n"
    done = run(node, "produce", "lines", "-f", r"%k %h %v\n", "--json", stdin=lines)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"topic": "lines", "produced": 3, "failed": 0,
                                       "partitions": {"0": {"first_offset": 0,
                                                            "last_offset": 2}}}

    done = run(node, "consume", "lines", "-n", "3", "-f", r"%o %k|%v|%h\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        "0 k1|first value|app=a,trace=1", "1 k2|second|app=b", "2 |no key, no header|"]

    # -n stops early; --json gives one object per record with its headers.
    code, out = cli(node, capsys, "consume", "lines", "-o", "1", "-n", "1", "--json")
    assert code == 0
    record = json.loads(out)
    assert (record["offset"], record["key"], record["headers"]) == (1, "k2", [["app", "b"]])

    # acks=0 (no offsets come back) and compression: counted, not placed.
    done = run(node, "produce", "lines", "--acks", "0", "-z", "lz4", "-H", "h=1,2", "--json",
               stdin=b"x\ny\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["produced"] == 2


def test_consume_in_a_group_commits_what_it_printed(node: BrokerProcess,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(node, capsys, "create", "grouped", "-p", "2")[0] == 0
    values = b"".join(b"v%d\n" % i for i in range(6))
    assert run(node, "produce", "grouped", "-k", "same-key", stdin=values).returncode == 0

    first = run(node, "consume", "grouped", "-g", "cli-g", "-n", "4")
    assert first.returncode == 0, first.stderr
    assert first.stdout.decode().splitlines() == ["v0", "v1", "v2", "v3"]
    # One key: every record is in one partition; the group committed exactly what it printed.
    assert _committed(node, "cli-g", "grouped") in ({0: 4, 1: None}, {0: None, 1: 4})

    rest = run(node, "consume", "grouped", "-g", "cli-g", "--end")
    assert rest.returncode == 0, rest.stderr
    assert rest.stdout.decode().splitlines() == ["v4", "v5"]
    assert 6 in _committed(node, "cli-g", "grouped").values()


def _committed(node: BrokerProcess, group: str, topic: str) -> dict[int, int | None]:
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in tps}


def test_add_partitions_trim_prefix_and_delete(node: BrokerProcess,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(node, capsys, "create", "grow", "-p", "1")[0] == 0
    done = run(node, "produce", "grow", "-p", "0", stdin=b"a\nb\nc\nd\n")
    assert done.returncode == 0, done.stderr

    assert cli(node, capsys, "add-partitions", "grow", "-n", "3")[0] == 0
    parts = describe(node, capsys, "grow")["partitions"]
    assert [(p["partition"], p["high_watermark"]) for p in parts] == [  # type: ignore[attr-defined]
        (0, 4), (1, 0), (2, 0)]

    trimmed = cli_json(node, capsys, "trim-prefix", "grow", "-p", "0", "-o", "2")
    assert trimmed == [{"partition": 0, "log_start_offset": 2}]
    p0 = describe(node, capsys, "grow")["partitions"][0]  # type: ignore[index]
    assert (p0["log_start_offset"], p0["high_watermark"]) == (2, 4)
    code, out = cli(node, capsys, "consume", "grow", "-p", "0", "-o", ":end", "-f", r"%o=%v\n")
    assert (code, out) == (0, "2=c\n3=d\n")
    # Every partition, to the end: nothing is left to read anywhere.
    assert main(["topic", "trim-prefix", "grow", "-o", "end", "--brokers", node.bootstrap]) == 2
    capsys.readouterr()  # neither -p nor --all-partitions: a usage error, not a guess
    assert cli(node, capsys, "trim-prefix", "grow", "--all-partitions", "-o", "end")[0] == 0
    assert [(p["log_start_offset"], p["high_watermark"])
            for p in describe(node, capsys, "grow")["partitions"]] == [  # type: ignore[attr-defined]
        (4, 4), (0, 0), (0, 0)]

    assert cli(node, capsys, "delete", "grow")[0] == 0
    assert "grow" not in [t["name"] for t in cli_json(node, capsys, "list")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [
    ("describe", "no-such-topic"),
    ("delete", "no-such-topic"),
    ("alter-config", "no-such-topic", "--set", "retention.ms=1"),
    ("consume", "no-such-topic", "-n", "1"),
    ("produce", "no-such-topic", "--no-create"),
])
def test_missing_topic_exits_4_with_one_line(node: BrokerProcess, args: tuple[str, ...]
                                             ) -> None:
    done = run(node, *args, stdin=b"x\n")
    assert done.returncode == 4, done.stderr
    assert "no-such-topic" in one_line_error(done) or "UNKNOWN_TOPIC" in done.stderr.decode()


def test_produce_to_a_new_topic_lets_the_broker_create_it(node: BrokerProcess) -> None:
    """As any Kafka producer: the broker auto-creates the topic (auto.create.topics.enable)."""
    done = run(node, "produce", "made-by-produce", stdin=b"hello\nworld\n")
    assert done.returncode == 0, done.stderr
    done = run(node, "consume", "made-by-produce", "-o", ":end")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == [b"hello", b"world"]


@pytest.mark.parametrize("args", [("list",), ("produce", "t"), ("consume", "t", "-n", "1")])
def test_unreachable_broker_exits_3_within_the_timeout(args: tuple[str, ...]) -> None:
    done = run(None, *args, stdin=b"x\n", brokers=f"127.0.0.1:{free_port()}", timeout=2)
    assert done.returncode == 3, done.stderr
    assert "cannot reach a broker" in one_line_error(done)


def test_invalid_config_exits_1_with_kafkas_error(node: BrokerProcess) -> None:
    done = run(node, "create", "bad-config", "-c", "retention.ms=soon")
    assert done.returncode == 1
    assert "INVALID_CONFIG" in one_line_error(done)
    assert run(node, "create", "good-config").returncode == 0
    done = run(node, "alter-config", "good-config", "--set", "no.such.config=1")
    assert done.returncode == 1
    assert "INVALID_CONFIG" in one_line_error(done)
