"""`redshank start`'s flags: every refusal is one line on stderr and exit code 2, before any
process starts; the node identity of a data directory is checked before its cores start."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from redshank.actors.node_identity_store import load_identity, store_identity
from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.node_identity import IDENTITY_FILE, NodeIdentity
from redshank.cluster.raft.types import NodeId
from redshank.tools import start


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    # structlog's configuration is process-wide and would keep printing to this test's
    # captured (later closed) stderr: a refusal must come before it anyway.
    def refuse(*_args: object) -> None:
        raise AssertionError("logging configured before the flags were all checked")
    monkeypatch.setattr(start, "configure_logging", refuse)


def _problem(*argv: str) -> str | None:
    return start.check_args(start._parser().parse_args(list(argv)))


@pytest.mark.parametrize(("argv", "message"), [
    (("--cores", "0"), "--cores must be >= 1"),
    (("--node-id", "-1"), "--node-id must be in [0, 2147483647]"),
    (("--node-id", str(2**31)), "--node-id must be in [0, 2147483647]"),
    (("--queued-max-request-bytes", "1"), "--queued-max-request-bytes must be >= 1048576"),
    (("--spin-us", "-1"), "--spin-us must be in [0, 100000]"),
    (("--loop-slice-us", "100001"), "--loop-slice-us must be in [0, 100000]"),
    (("--retention-check-ms", "0"), "--retention-check-ms must be >= 1"),
    (("--connections-max-idle-ms", "-1"), "--connections-max-idle-ms must be >= 0"),
    (("--auto-create-topics-per-request", "0"),
     "--auto-create-topics-per-request must be >= 1"),
    (("--seeds", "127.0.0.1:33145"), "--seeds needs --rpc-addr"),
    (("--advertise-rpc-addr", "127.0.0.1:33145"), "--advertise-rpc-addr needs --rpc-addr"),
    (("--rpc-addr", "127.0.0.1:0"),
     "--rpc-addr needs a port (core c listens on PORT + c): port 0 is not allowed"),
    (("--rpc-addr", "127.0.0.1:65535", "--cores", "2"),
     "--rpc-addr 127.0.0.1:65535: the ports of 2 cores (65535-65536) pass 65535"),
])
def test_each_bad_flag_has_its_message(argv: tuple[str, ...], message: str) -> None:
    assert _problem(*argv) == message


@pytest.mark.parametrize("argv", [
    (),
    ("--node-id", "0"),
    ("--node-id", "2147483647", "--rpc-addr", "127.0.0.1:65534", "--cores", "2"),
    ("--rpc-addr", "127.0.0.1:33145"),
    ("--rpc-addr", "0.0.0.0:33145", "--advertise-rpc-addr", "node-1:33145",
     "--seeds", "node-1:33145,node-2:33145"),
])
def test_good_flags(argv: tuple[str, ...]) -> None:
    assert _problem(*argv) is None


def test_seeds_parse_in_order_without_duplicates() -> None:
    args = start._parser().parse_args(["--seeds", "a:1, b:2,a:1,[::1]:3"])
    assert args.seeds == (NetAddress("a", 1), NetAddress("b", 2), NetAddress("::1", 3))


@pytest.mark.parametrize(("argv", "message"), [
    (("--rpc-addr", "nope"), "argument --rpc-addr: expected HOST:PORT, got 'nope'"),
    (("--rpc-addr", "h:65536"), "argument --rpc-addr: expected HOST:PORT, got 'h:65536'"),
    (("--advertise-rpc-addr", ":1"), "argument --advertise-rpc-addr: expected HOST:PORT"),
    (("--seeds", "a:1,,b:2"), "argument --seeds: expected HOST:PORT, got ''"),
    (("--seeds", "a:0"), "argument --seeds: seed 'a:0' has port 0"),
    (("--node-id", "x"), "argument --node-id: invalid int value: 'x'"),
])
def test_unparsable_flags_exit_2(argv: tuple[str, ...], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        start.main(list(argv))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_main_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert start.main(["--seeds", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == "redshank start: --seeds needs --rpc-addr\n"


def test_a_busy_rpc_port_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = start.main(["--kafka-addr", "127.0.0.1:0", "--data-dir", str(tmp_path),
                           "--rpc-addr", f"127.0.0.1:{port - 1}", "--cores", "2",
                           "--admin-addr", "none"])
    assert code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"redshank start: cannot listen for RPC on 127.0.0.1:{port} (core 1):")


def test_a_data_dir_of_another_node_is_refused(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    stored = NodeIdentity(NodeId(3), uuid.uuid4())
    store_identity(str(tmp_path), stored)
    code = start.main(["--kafka-addr", "127.0.0.1:0", "--data-dir", str(tmp_path),
                       "--node-id", "5", "--admin-addr", "none"])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"redshank start: data dir {tmp_path} belongs to node 3, started as node 5")
    assert load_identity(str(tmp_path)) == stored  # untouched


def test_a_damaged_identity_is_refused(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / IDENTITY_FILE).parent.mkdir()
    (tmp_path / IDENTITY_FILE).write_text("{")
    code = start.main(["--kafka-addr", "127.0.0.1:0", "--data-dir", str(tmp_path),
                       "--admin-addr", "none"])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"redshank start: data dir {tmp_path}: damaged cluster/node_identity.json: not JSON")


@pytest.mark.parametrize(("argv", "message"), [
    (("--default-partitions", "0"), "--default-partitions must be >= 1"),
    (("--default-replication-factor", "0"), "--default-replication-factor must be >= 1"),
    (("--default-replication-factor", "3"),
     "--default-replication-factor above 1 needs a cluster (--rpc-addr)"),
    (("--default-partitions", "4"), None),
    (("--default-replication-factor", "1"), None),
    (("--default-replication-factor", "3", "--rpc-addr", "127.0.0.1:33145"), None),
    (("--group-initial-rebalance-delay-ms", "-1"),
     "--group-initial-rebalance-delay-ms must be in [0, 300000]"),
    (("--group-initial-rebalance-delay-ms", "3000"), None),
])
def test_default_partitions_and_replication_factor(argv: tuple[str, ...],
                                                   message: str | None) -> None:
    assert _problem(*argv) == message


def test_default_flags_reach_the_broker_config_as_kafka_names() -> None:
    given = start._defaults(start._parser().parse_args(["--default-partitions", "4"]))
    assert given == {"default_partitions": 4, "default_replication_factor": None,
                     "explicit_configs": frozenset({"num.partitions"})}
    assert start._defaults(start._parser().parse_args([])) == {
        "default_replication_factor": None, "explicit_configs": frozenset()}
    delay = start._defaults(start._parser().parse_args(
        ["--group-initial-rebalance-delay-ms", "3000"]))
    assert delay == {"initial_rebalance_delay_ms": 3000, "default_replication_factor": None,
                     "explicit_configs": frozenset({"group.initial.rebalance.delay.ms"})}
