"""`redshank start`: run a single-node broker (one core process per CPU) until SIGTERM.

    redshank start [--kafka-addr HOST:PORT] [--advertise-kafka-addr HOST:PORT]
                   [--data-dir DIR] [--cores N] [--node-id N] [--connections-max-idle-ms MS]
                   [--auto-create-topics-per-request N]

Prints one line on stdout when every core serves the Kafka port
(`redshank ready kafka=HOST:PORT cores=N ...`); structured logs go to stderr. Every core listens
on the port with SO_REUSEPORT. A port already in use, or a data directory held by a running node,
fails at once with a clear message (exit code 2). Port 0 picks a free port: the supervisor holds
it with a bound, non-listening SO_REUSEPORT socket, so the cores share that one port.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import socket
import sys
import time

from redshank.actors.broker import REQUEST_MEMORY_BYTES, RING_BYTES, BrokerConfig, setup_core
from redshank.actors.partition_manager import RETENTION_CHECK_S
from redshank.actors.runtime import (
    DEFAULT_LOOP_SLICE_US,
    NodeBusyError,
    Supervisor,
    configure_logging,
)

__all__ = ["main", "parse_addr"]

READY_TIMEOUT_S = 60.0


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _claim_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Fail clearly if the port is taken; else hold it (SO_REUSEPORT, not listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port != 0:
        probe = socket.socket(family, socket.SOCK_STREAM)
        # SO_REUSEADDR: connections of a killed predecessor in TIME_WAIT must not block a
        # restart; a listening socket still does (Linux).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))  # no SO_REUSEPORT: fails if anyone holds the port
        finally:
            probe.close()
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, port))
    return holder, int(holder.getsockname()[1])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="redshank start", description=__doc__.splitlines()[0])
    p.add_argument("--kafka-addr", type=parse_addr, default=("127.0.0.1", 9092),
                   help="HOST:PORT the Kafka API listens on (default 127.0.0.1:9092; port 0: any)")
    p.add_argument("--advertise-kafka-addr", type=parse_addr, default=None,
                   help="HOST:PORT given to clients in Metadata (default: the listen address)")
    p.add_argument("--data-dir", default="./redshank-data", help="default ./redshank-data")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                   help="core processes (default: CPU count)")
    p.add_argument("--node-id", type=int, default=0)
    p.add_argument("--no-pin", action="store_true", help="do not pin cores to CPUs")
    p.add_argument("--spin-us", type=int, default=0,
                   help="microseconds a core polls its mailboxes after traffic before sleeping "
                        "(default 0; worth it only on CPUs nothing else uses)")
    p.add_argument("--loop-slice-us", type=int, default=DEFAULT_LOOP_SLICE_US,
                   help="scheduler slice each core's loop thread asks for, so its wake-ups "
                        "preempt other work on its CPU (Linux 6.12+ EEVDF; default "
                        f"{DEFAULT_LOOP_SLICE_US}; 0: the kernel's default)")
    p.add_argument("--queued-max-request-bytes", type=int,
                   default=REQUEST_MEMORY_BYTES,
                   help="bytes of not yet decoded requests each core's connections may hold "
                        f"(default {REQUEST_MEMORY_BYTES}; min 1 MiB)")
    p.add_argument("--retention-check-ms", type=int, default=int(RETENTION_CHECK_S * 1000),
                   help="how often retention.ms / retention.bytes are applied (default "
                        f"{int(RETENTION_CHECK_S * 1000)})")
    defaults = BrokerConfig("", 0, "", 0, "")
    p.add_argument("--connections-max-idle-ms", type=int,
                   default=defaults.connections_max_idle_ms,
                   help="close a connection with no request in flight and no traffic for this "
                        f"long (Kafka's connections.max.idle.ms; default "
                        f"{defaults.connections_max_idle_ms}; 0: never)")
    p.add_argument("--auto-create-topics-per-request", type=int,
                   default=defaults.auto_create_topics_per_request,
                   help="topics one Metadata request may auto-create; its other new names are "
                        "answered UNKNOWN_TOPIC_OR_PARTITION and created by later requests "
                        f"(default {defaults.auto_create_topics_per_request})")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.cores < 1:
        print("redshank start: --cores must be >= 1", file=sys.stderr)
        return 2
    if args.queued_max_request_bytes < 1 << 20:
        print("redshank start: --queued-max-request-bytes must be >= 1048576", file=sys.stderr)
        return 2
    if not 0 <= args.spin_us <= 100_000:
        print("redshank start: --spin-us must be in [0, 100000]", file=sys.stderr)
        return 2
    if not 0 <= args.loop_slice_us <= 100_000:
        print("redshank start: --loop-slice-us must be in [0, 100000]", file=sys.stderr)
        return 2
    if args.retention_check_ms < 1:
        print("redshank start: --retention-check-ms must be >= 1", file=sys.stderr)
        return 2
    if args.connections_max_idle_ms < 0:
        print("redshank start: --connections-max-idle-ms must be >= 0", file=sys.stderr)
        return 2
    if args.auto_create_topics_per_request < 1:
        print("redshank start: --auto-create-topics-per-request must be >= 1",
              file=sys.stderr)
        return 2
    configure_logging(None)
    host, port = args.kafka_addr
    try:
        holder, port = _claim_port(host, port)
    except OSError as exc:
        print(f"redshank start: cannot listen on {host}:{port}: {exc.strerror} "
              "(another broker running?)", file=sys.stderr)
        return 2
    adv_host, adv_port = args.advertise_kafka_addr or (host, port)
    if adv_port == 0:
        adv_port = port
    data_dir = os.path.abspath(args.data_dir)
    os.makedirs(data_dir, exist_ok=True)
    config = BrokerConfig(host=host, port=port, advertised_host=adv_host,
                          advertised_port=adv_port, data_dir=data_dir, node_id=args.node_id,
                          retention_check_s=args.retention_check_ms / 1000,
                          request_memory_bytes=args.queued_max_request_bytes,
                          connections_max_idle_ms=args.connections_max_idle_ms,
                          auto_create_topics_per_request=args.auto_create_topics_per_request)
    sup = Supervisor(data_dir, args.cores, functools.partial(setup_core, config),
                     ring_capacity=RING_BYTES, pin=not args.no_pin,
                     spin_s=args.spin_us / 1e6, loop_slice_us=args.loop_slice_us)
    signal.signal(signal.SIGTERM, sup.request_stop)
    signal.signal(signal.SIGINT, sup.request_stop)
    try:
        sup.start()
    except NodeBusyError:
        print(f"redshank start: data directory {data_dir} is used by a running node",
              file=sys.stderr)
        holder.close()
        return 2
    try:
        if not _wait_ready(sup):
            sup.stop()
            print("redshank start: a core failed to start (see the log above)", file=sys.stderr)
            return 1
        print(f"redshank ready kafka={adv_host}:{adv_port} cores={args.cores} "
              f"node_id={args.node_id} data_dir={data_dir}", flush=True)
        return sup.run_forever()
    finally:
        with contextlib.suppress(OSError):
            holder.close()


def _wait_ready(sup: Supervisor) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not sup.all_ready():
        if sup._stop_requested or time.monotonic() > deadline:
            return False
        sup.poll(0.02)
        if any(sup.pid(c) is None for c in range(sup.ncores)):
            return False  # a core died during its setup (port, disk): do not retry forever
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
