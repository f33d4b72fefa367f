"""The admin HTTP API of `redshank start` (tools/admin): every endpoint's JSON against a real
broker, `/metrics` parsed by prometheus_client's own text parser and seen to move when a real
client produces, and the `--admin-addr` refusals (a port in use; `none`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_proc import BrokerProcess, create_topic
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from redshank.actors.runtime import read_node_stats

TOPIC = "admin-http"
PARTITIONS = 2
RECORDS = 300
WAIT_S = 15.0  # the cores publish every 0.5 s, the partitions table every 1 s


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("admin") / "data", cores=2)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _get(broker: BrokerProcess, path: str) -> tuple[int, str]:
    assert broker.admin_url is not None, broker.ready_line
    try:
        with urllib.request.urlopen(broker.admin_url + path, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def _json(broker: BrokerProcess, path: str) -> Any:
    status, body = _get(broker, path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def _samples(broker: BrokerProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    status, text = _get(broker, "/metrics")
    assert status == 200
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
           **labels: str) -> float:
    return sum(v for ls, v in samples.get(name, ()) if labels.items() <= ls.items())


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.2)  # the stats blocks are republished on their own timers


def _listening_ports(pid: int) -> set[int]:
    """TCP ports a process has listening sockets on (its fds against /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def test_status_node_health_and_actors(broker: BrokerProcess) -> None:
    assert " admin=127.0.0.1:" in broker.ready_line
    assert broker.proc is not None
    admin_port = int(broker.admin_url.rsplit(":", 1)[1]) if broker.admin_url else 0
    assert admin_port in _listening_ports(broker.proc.pid)  # the supervisor serves it

    assert _get(broker, "/v1/status/ready") == (200, '{"status": "ready"}')
    node = _json(broker, "/v1/node")
    assert node["node_id"] == 0 and node["cores"] == 2 and node["rpc"] is None
    assert node["kafka"] == broker.bootstrap and node["uptime_s"] > 0
    assert node["version"] and node["pid"] == broker.proc.pid
    health = _json(broker, "/v1/cluster/health")
    assert health["is_healthy"] is True and health["mode"] == "single"
    assert health["all_nodes"] == [0] and health["nodes_down"] == []

    def managers() -> bool:  # every core's partition manager, once its snapshot shows it
        actors = _json(broker, "/v1/actors")
        return all(any(a["name"] == "partitions" for a in c.get("actors", ()))
                   for c in actors["cores"])

    _until("each core's actors in /v1/actors", managers)
    actors = _json(broker, "/v1/actors")
    local = read_node_stats(broker.data_dir)  # what `redshank actors --json` prints
    assert actors.keys() == local.keys()
    assert (actors["node_dir"], actors["prefix"], actors["supervisor_pid"]) == (
        local["node_dir"], local["prefix"], local["supervisor_pid"])
    assert [c["core"] for c in actors["cores"]] == [0, 1]
    assert [c.keys() for c in actors["cores"]] == [c.keys() for c in local["cores"]]
    status, _ = _get(broker, "/v1/nope")
    assert status == 404


def test_top_reads_the_admin_api(broker: BrokerProcess) -> None:
    """`redshank top --admin-url` against the real admin server: one view of both cores."""
    assert broker.admin_url is not None
    done = subprocess.run([sys.executable, "-m", "redshank.tools.cli", "top", "--admin-url",
                           broker.admin_url, "--once", "--interval", "0.2"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ, COLUMNS="160"))
    assert done.returncode == 0, done.stderr
    assert "partitions" in done.stdout and done.stderr == ""


def test_metrics_and_partitions_move_with_traffic(broker: BrokerProcess) -> None:
    before = _samples(broker)
    assert _total(before, "redshank_core_up") == 2
    create_topic(broker.bootstrap, TOPIC, PARTITIONS)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "linger.ms": 2})
    for i in range(RECORDS):
        producer.produce(TOPIC, value=b"v" * 100, partition=i % PARTITIONS)
    assert producer.flush(20) == 0

    def produced() -> bool:
        rows = [r for r in _json(broker, "/v1/partitions")["partitions"] if r["topic"] == TOPIC]
        return sum(r["high_watermark"] for r in rows) == RECORDS

    _until("the partitions table shows every record", produced)
    rows = [r for r in _json(broker, "/v1/partitions")["partitions"] if r["topic"] == TOPIC]
    assert [r["partition"] for r in rows] == list(range(PARTITIONS))
    for r in rows:
        assert r["log_start_offset"] == 0 and r["high_watermark"] == RECORDS // PARTITIONS
        assert r["log_end_offset"] == r["high_watermark"] and r["bytes"] > 100 * r["high_watermark"]
        assert (r["leader"], r["replicas"], r["role"]) == (0, [0], "leader")

    def metrics_moved() -> bool:
        after = _samples(broker)
        return (_total(after, "redshank_kafka_requests_total", api="produce", error="none")
                > _total(before, "redshank_kafka_requests_total", api="produce")
                and _total(after, "redshank_partition_high_watermark", topic=TOPIC) == RECORDS)

    _until("produce requests and high watermarks in /metrics", metrics_moved)
    after = _samples(broker)
    produce_requests = _total(after, "redshank_kafka_requests_total", api="produce")
    assert _total(after, "redshank_kafka_request_latency_seconds_count",
                  api="produce") == produce_requests
    assert _total(after, "redshank_kafka_request_latency_seconds_bucket", api="produce",
                  le="+Inf") == produce_requests
    assert _total(after, "redshank_kafka_request_latency_seconds_sum", api="produce") > 0
    assert _total(after, "redshank_disk_flush_latency_seconds_count") > _total(
        before, "redshank_disk_flush_latency_seconds_count")
    assert _total(after, "redshank_partition_bytes", topic=TOPIC) == sum(r["bytes"] for r in rows)
    assert _total(after, "redshank_actor_messages_total", actor=f"partition/{TOPIC}/0") > 0
    assert _total(after, "redshank_actor_handler_seconds_total") > _total(
        before, "redshank_actor_handler_seconds_total")
    assert "redshank_mailbox_frames_total" in after and "redshank_actor_mailbox_depth" in after


def test_errors_are_counted_by_code(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "admin-http-twice", 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    again = admin.create_topics([NewTopic("admin-http-twice", 1, 1)], request_timeout=15)
    with pytest.raises(Exception, match="already exists"):
        again["admin-http-twice"].result(timeout=20)
    _until("create_topics topic_already_exists in /metrics", lambda: _total(
        _samples(broker), "redshank_kafka_requests_total", api="create_topics",
        error="topic_already_exists") >= 1)


def _start(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redshank.tools.cli", "start", *args],
                          capture_output=True, text=True, timeout=60)


def test_an_admin_port_in_use_is_refused(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _start("--kafka-addr", "127.0.0.1:0", "--admin-addr", f"127.0.0.1:{port}",
                     "--data-dir", str(tmp_path / "data"), "--cores", "1")
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"redshank start: cannot listen for the admin API on 127.0.0.1:{port}:"), out.stderr


def test_admin_addr_none_serves_no_admin_api(tmp_path: Path) -> None:
    node = BrokerProcess(tmp_path / "data", cores=1, admin_addr="none")
    node.start()
    try:
        assert " admin=" not in node.ready_line and node.admin_url is None
        assert node.proc is not None
        assert _listening_ports(node.proc.pid) == set()  # the cores listen for Kafka, not it
    finally:
        assert node.stop() == 0
