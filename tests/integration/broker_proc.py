"""A `redshank start` child process for integration tests: start, wait for the ready line, stop.

Every wait is bounded; on failure the message carries the tail of the broker's stderr log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from redshank.tools.bench._broker import create_topic, free_port, read_line

__all__ = [
    "BrokerProcess", "consume_aiokafka", "create_topic", "free_port", "recv_exact", "start_on",
]


class BrokerProcess:
    def __init__(self, data_dir: Path, *, cores: int = 2, port: int = 0,
                 ready_timeout: float = 45.0, extra_args: tuple[str, ...] = (),
                 admin_addr: str = "127.0.0.1:0") -> None:
        self.data_dir = Path(data_dir)
        # Any free port by default: tests run many brokers, never on the fixed 9644.
        self.admin_addr = admin_addr
        self.extra_args = extra_args
        self.cores = cores
        self.port = port
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap = ""
        self.ready_line = ""
        self.admin_url: str | None = None  # http://HOST:PORT of the admin API, from the ready line
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-broker.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "redshank.tools.cli", "start",
                "--kafka-addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
                "--cores", str(self.cores),
                *(() if "--admin-addr" in self.extra_args else ("--admin-addr", self.admin_addr)),
                *self.extra_args]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log,
                                         env=dict(os.environ))
        finally:
            log.close()
        assert self.proc.stdout is not None
        line = read_line(self.proc.stdout, self.ready_timeout)
        if not line.startswith("redshank ready "):
            rc = self.proc.poll()
            self.kill()
            raise AssertionError(
                f"broker not ready within {self.ready_timeout} s (exit {rc}, stdout {line!r});"
                f" log:\n{self.log_tail()}")
        self.ready_line = line
        fields = dict(f.split("=", 1) for f in line.split()[2:])
        self.bootstrap = fields["kafka"]
        self.admin_url = f"http://{fields['admin']}" if "admin" in fields else None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code (negative if killed)."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        self.proc = None
        return int(proc.returncode)

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self.proc = None


def start_on(data_dir: Path, port: int = 0, *, cores: int = 2, within: float = 20.0,
             ready_timeout: float = 30.0) -> BrokerProcess:
    """A broker on `port` and `data_dir`, retried for `within` seconds: after a kill -9 the
    old cores may take a moment to release the port."""
    deadline = time.monotonic() + within
    while True:
        node = BrokerProcess(data_dir, cores=cores, port=port, ready_timeout=ready_timeout)
        try:
            node.start()
            return node
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def expected_records(prefix: str, partitions: int, per_partition: int
                     ) -> dict[int, list[tuple[bytes, bytes]]]:
    """The (key, value) records a test produces to each partition, in order; values vary in
    size so batches are not all alike."""
    return {
        p: [(f"{prefix}-k{p}-{i}".encode(), f"{prefix}-v{p}-{i}-".encode() + b"x" * (i % 97))
            for i in range(per_partition)]
        for p in range(partitions)
    }


def check_consumed(expected: dict[int, list[tuple[bytes, bytes]]],
                   got: dict[int, list[tuple[int, bytes | None, bytes | None]]]) -> None:
    """Record by record: offsets 0..n-1 in order, keys and values as produced."""
    for p, records in expected.items():
        seen = got.get(p, [])
        assert len(seen) == len(records), (
            f"partition {p}: consumed {len(seen)} records, produced {len(records)}")
        for i, ((key, value), (offset, k, v)) in enumerate(zip(records, seen, strict=True)):
            assert offset == i, f"partition {p}: record {i} has offset {offset}"
            assert (k, v) == (key, value), f"partition {p} offset {offset}: {(k, v)!r}"


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly `n` bytes from a blocking socket (its timeout bounds each recv)."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "connection closed early"
        buf += chunk
    return buf


Polled = dict[tuple[str, int], list[tuple[int, bytes | None, bytes | None]]]


def consume_aiokafka(bootstrap: str, tps: list[tuple[str, int]], total: int) -> Polled:
    """Read `total` records by assign from offset 0 of each (topic, partition) with aiokafka
    (at most 20 s of polling), as (offset, key, value) per partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> Polled:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    fetch_max_wait_ms=100)
        await consumer.start()
        got: Polled = {}
        try:
            assigned = [TopicPartition(t, p) for t, p in tps]
            consumer.assign(assigned)
            for tp in assigned:
                consumer.seek(tp, 0)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            count = 0
            while count < total and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for tp, msgs in batch.items():
                    for m in msgs:
                        got.setdefault((tp.topic, tp.partition), []).append(
                            (m.offset, m.key, m.value))
                        count += 1
        finally:
            await consumer.stop()
        return got

    return asyncio.run(asyncio.wait_for(run(), 40))
