"""`redshank start`: run a broker node (one core process per CPU) until SIGTERM.

    redshank start [--kafka-addr HOST:PORT] [--advertise-kafka-addr HOST:PORT]
                   [--data-dir DIR] [--cores N] [--node-id N] [--connections-max-idle-ms MS]
                   [--auto-create-topics-per-request N]
                   [--rpc-addr HOST:PORT [--advertise-rpc-addr HOST:PORT] [--seeds H:P,...]]
                   [--log-format json|console] [--log-level debug|info|warning|error]
                   [--admin-addr HOST:PORT|none]

Prints one line on stdout when every core serves the Kafka port
(`redshank ready kafka=HOST:PORT cores=N ...`); structured logs go to stderr, one record per line
(`--log-format json`, the default, or `console` for people; every core logs alike). Every core
listens on the port with SO_REUSEPORT. A port already in use, a data directory held by a running
node, or one that cannot be created or written (a file in the way, a read-only filesystem, a
parent that cannot be made) fails at once with one clear line (exit code 2). More cores than the
CPUs this process may run on start with a warning (`cores_exceed_cpus`). Port 0 picks a free
port: the supervisor holds it with a bound, non-listening SO_REUSEPORT socket, so the cores share
that one port.

The data directory remembers the node's identity (`cluster/node_identity.json`: node id, node
uuid, seeds, cluster uuid): started again under another `--node-id` it is refused (exit 2).
With `--rpc-addr HOST:PORT` every core c also listens for other nodes on PORT + c, and with
`--seeds` the node greets each seed (HELLO) in the background; a seed that is another node with
our id, or of another cluster, stops this node (exit 1, the reason on stderr). A node whose RPC
address is among the seeds also runs its replica of the controller (Raft group 0) on core 0,
in `<data>/controller` (`actors/controller_service.py`; its view in
`cluster/controller.json`). Without `--rpc-addr` the node is the single-node broker it always
was.

The admin HTTP API (`tools/admin`: readiness, node, health, partitions, actors, Prometheus
`/metrics`) listens on `--admin-addr` (default 127.0.0.1:9644; port 0: any; `none`: off), served
by a thread of this supervisor process; the ready line names it (`admin=HOST:PORT`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import socket
import sys
import tempfile
import time
from typing import Any

import structlog

from redshank.actors.broker import REQUEST_MEMORY_BYTES, RING_BYTES, BrokerConfig, setup_core
from redshank.actors.node_identity_store import settle_identity
from redshank.actors.node_rpc import NodeRpcConfig, clear_node_files, read_refusal
from redshank.actors.partition_manager import RETENTION_CHECK_S
from redshank.actors.runtime import (
    DEFAULT_LOOP_SLICE_US,
    NodeBusyError,
    NodeDir,
    Supervisor,
    configure_logging,
)
from redshank.actors.runtime.log_setup import LOG_FORMATS, LOG_LEVELS
from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.node_identity import (
    MAX_NODE_ID,
    IdentityFileError,
    IdentityRefused,
    NodeIdentity,
)
from redshank.tools.admin import AdminConfig, AdminServer, bind_admin_socket

__all__ = ["check_args", "main", "parse_addr", "parse_admin_addr", "parse_seeds"]

READY_TIMEOUT_S = 60.0
ADMIN_ADDR = ("127.0.0.1", 9644)  # Redpanda's admin API port


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_admin_addr(text: str) -> tuple[str, int] | None:
    """`HOST:PORT`, or `none` (no admin API)."""
    return None if text.strip().lower() == "none" else parse_addr(text)


def parse_seeds(text: str) -> tuple[NetAddress, ...]:
    """`HOST:PORT,HOST:PORT,...` (duplicates dropped, order kept); ports 1-65535."""
    seeds: list[NetAddress] = []
    for item in text.split(","):
        host, port = parse_addr(item.strip())
        if port == 0:
            raise argparse.ArgumentTypeError(f"seed {item.strip()!r} has port 0")
        if NetAddress(host, port) not in seeds:
            seeds.append(NetAddress(host, port))
    return tuple(seeds)


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
    p.add_argument("--admin-addr", type=parse_admin_addr, default=ADMIN_ADDR,
                   help="HOST:PORT of the admin HTTP API and /metrics (default 127.0.0.1:9644; "
                        "port 0: any; none: no admin API)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                   help="core processes (default: CPU count)")
    p.add_argument("--node-id", type=int, default=0,
                   help=f"this node's id, 0-{MAX_NODE_ID} (default 0); the data directory "
                        "keeps it and refuses another")
    p.add_argument("--rpc-addr", type=parse_addr, default=None,
                   help="HOST:PORT of the internal RPC between nodes: the base port, core c "
                        "listens on PORT + c (default: none, a single node)")
    p.add_argument("--advertise-rpc-addr", type=parse_addr, default=None,
                   help="HOST:PORT other nodes are told to reach core 0 at (default: the "
                        "--rpc-addr)")
    p.add_argument("--seeds", type=parse_seeds, default=(),
                   help="HOST:PORT,... RPC base addresses of nodes to greet at start (may "
                        "include this node's own); needs --rpc-addr")
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
    p.add_argument("--log-format", choices=LOG_FORMATS, default=None,
                   help="json: one object per line (default); console: for people")
    p.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="default info")
    p.add_argument("--default-partitions", type=int, default=None,
                   help="partitions of an auto-created topic or of a CreateTopics asking -1 "
                        "(Kafka's num.partitions; default 1)")
    p.add_argument("--default-replication-factor", type=int, default=None,
                   help="replicas of an auto-created topic or of a CreateTopics asking -1 "
                        "(Kafka's default.replication.factor; default 1 on a single node, 3 in "
                        "a cluster of 3 or more nodes)")
    p.add_argument("--group-initial-rebalance-delay-ms", type=int, default=None,
                   help="how long an empty consumer group's first rebalance waits for more "
                        "members (Kafka's group.initial.rebalance.delay.ms, whose default is "
                        "3000; default here 500, so a lone consumer reads within a second)")
    return p


def check_data_dir(data_dir: str) -> str | None:
    """Create the data directory (with its parents) and prove it writable: None, or what is
    wrong as one line for stderr."""
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        return f"--data-dir {data_dir}: not a directory (a file is in the way)"
    try:
        os.makedirs(data_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".redshank-write-probe-", dir=data_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = ""
        if isinstance(exc, NotADirectoryError):
            parent = os.path.dirname(data_dir)
            while parent and not os.path.exists(parent):
                parent = os.path.dirname(parent)
            where = f" ({parent} is a file)"
        elif exc.filename and not str(exc.filename).startswith(data_dir):
            where = f" ({exc.filename})"
        return f"--data-dir {data_dir}: cannot create or write it: {exc.strerror}{where}"
    return None


def cores_warning(cores: int) -> dict[str, int] | None:
    """More cores than CPUs this process may run on: they share CPUs (and pinned ones double
    up), worth a warning; None if not."""
    cpus = len(os.sched_getaffinity(0))
    return {"cores": cores, "cpus": cpus} if cores > cpus else None


def _defaults_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with --default-partitions / --default-replication-factor, if anything."""
    if args.default_partitions is not None and args.default_partitions < 1:
        return "--default-partitions must be >= 1"
    rf = args.default_replication_factor
    if rf is not None and rf < 1:
        return "--default-replication-factor must be >= 1"
    if rf is not None and rf > 1 and args.rpc_addr is None:
        return "--default-replication-factor above 1 needs a cluster (--rpc-addr)"
    delay = args.group_initial_rebalance_delay_ms
    if delay is not None and not 0 <= delay <= 300_000:
        return "--group-initial-rebalance-delay-ms must be in [0, 300000]"
    return None


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    """BrokerConfig fields of --default-partitions / --default-replication-factor /
    --group-initial-rebalance-delay-ms."""
    explicit = frozenset(name for name, flag in (
        ("num.partitions", args.default_partitions),
        ("default.replication.factor", args.default_replication_factor),
        ("group.initial.rebalance.delay.ms", args.group_initial_rebalance_delay_ms))
        if flag is not None)
    out: dict[str, Any] = {"default_replication_factor": args.default_replication_factor,
                           "explicit_configs": explicit}
    if args.default_partitions is not None:
        out["default_partitions"] = args.default_partitions
    if args.group_initial_rebalance_delay_ms is not None:
        out["initial_rebalance_delay_ms"] = args.group_initial_rebalance_delay_ms
    return out


def check_args(args: argparse.Namespace) -> str | None:
    """The first thing wrong with the parsed flags, as one line for stderr; None if none."""
    ranges = (("--cores", args.cores, 1, None), ("--node-id", args.node_id, 0, MAX_NODE_ID),
              ("--queued-max-request-bytes", args.queued_max_request_bytes, 1 << 20, None),
              ("--spin-us", args.spin_us, 0, 100_000),
              ("--loop-slice-us", args.loop_slice_us, 0, 100_000),
              ("--retention-check-ms", args.retention_check_ms, 1, None),
              ("--connections-max-idle-ms", args.connections_max_idle_ms, 0, None),
              ("--auto-create-topics-per-request", args.auto_create_topics_per_request, 1,
               None))
    defaults = _defaults_problem(args)
    if defaults is not None:
        return defaults
    for flag, value, low, high in ranges:
        if high is None and value < low:
            return f"{flag} must be >= {low}"
        if high is not None and not low <= value <= high:
            return f"{flag} must be in [{low}, {high}]"
    if args.rpc_addr is None:
        if args.seeds:
            return "--seeds needs --rpc-addr"
        if args.advertise_rpc_addr is not None:
            return "--advertise-rpc-addr needs --rpc-addr"
        return None
    host, port = args.rpc_addr
    if port == 0:
        return "--rpc-addr needs a port (core c listens on PORT + c): port 0 is not allowed"
    if port + args.cores - 1 > 65535:
        return (f"--rpc-addr {host}:{port}: the ports of {args.cores} cores "
                f"({port}-{port + args.cores - 1}) pass 65535")
    return None


def _rpc_ports_free(host: str, port: int, cores: int) -> str | None:
    for core in range(cores):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port + core))
            except OSError as exc:
                return (f"cannot listen for RPC on {host}:{port + core} (core {core}): "
                        f"{exc.strerror} (another node running?)")
    return None


def _settle_identity(data_dir: str, node_id: int, seeds: tuple[NetAddress, ...]
                     ) -> NodeIdentity | str:
    """Check and store the data directory's identity under its lock: the identity this start
    runs as, or an error line."""
    node = NodeDir(data_dir)
    try:
        node.lock()
    except NodeBusyError:
        return f"data directory {data_dir} is used by a running node"
    try:
        identity = settle_identity(data_dir, node_id, seeds)
        clear_node_files(data_dir)
    except IdentityFileError as exc:
        return f"data dir {data_dir}: damaged cluster/node_identity.json: {exc}"
    finally:
        node.unlock()
    if isinstance(identity, IdentityRefused):
        return identity.message(data_dir)
    return identity


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    problem = check_args(args)
    if problem is not None:
        print(f"redshank start: {problem}", file=sys.stderr)
        return 2
    problem = check_data_dir(os.path.abspath(args.data_dir))
    if problem is not None:
        print(f"redshank start: {problem}", file=sys.stderr)
        return 2
    host, port = args.kafka_addr
    if args.rpc_addr is not None:
        rpc_host, rpc_base = args.rpc_addr
        problem = _rpc_ports_free(rpc_host, rpc_base, args.cores)
        if problem is not None:
            print(f"redshank start: {problem}", file=sys.stderr)
            return 2
    try:
        holder, port = _claim_port(host, port)
    except OSError as exc:
        print(f"redshank start: cannot listen on {host}:{port}: {exc.strerror} "
              "(another broker running?)", file=sys.stderr)
        return 2
    admin_sock = None
    if args.admin_addr is not None:
        admin_host, admin_port = args.admin_addr
        try:
            admin_sock = bind_admin_socket(admin_host, admin_port)
        except OSError as exc:
            holder.close()
            print(f"redshank start: cannot listen for the admin API on {admin_host}:"
                  f"{admin_port}: {exc.strerror} (another node running? --admin-addr none "
                  "turns it off)", file=sys.stderr)
            return 2
    try:
        return _run(args, port, admin_sock)
    finally:
        with contextlib.suppress(OSError):
            holder.close()
        if admin_sock is not None:
            with contextlib.suppress(OSError):
                admin_sock.close()


def _run(args: argparse.Namespace, port: int, admin_sock: socket.socket | None = None) -> int:
    host = args.kafka_addr[0]
    adv_host, adv_port = args.advertise_kafka_addr or (host, port)
    if adv_port == 0:
        adv_port = port
    data_dir = os.path.abspath(args.data_dir)
    os.makedirs(data_dir, exist_ok=True)
    identity = _settle_identity(data_dir, args.node_id, args.seeds)
    if isinstance(identity, str):
        print(f"redshank start: {identity}", file=sys.stderr)
        return 2
    rpc: NodeRpcConfig | None = None
    rpc_field = ""
    if args.rpc_addr is not None:
        listen = NetAddress(*args.rpc_addr)
        adv_rpc = NetAddress(*(args.advertise_rpc_addr or listen))
        if adv_rpc.port == 0:
            adv_rpc = NetAddress(adv_rpc.host, listen.port)
        rpc = NodeRpcConfig(listen, adv_rpc, identity, os.getpid())
        rpc_field = f" rpc={adv_rpc}"
    # process-wide: only once nothing can be refused any more; the cores inherit the settings
    configure_logging(None, args.log_level, args.log_format)
    oversubscribed = cores_warning(args.cores)
    if oversubscribed is not None:
        structlog.get_logger("redshank.start").warning(
            "cores_exceed_cpus", **oversubscribed,
            detail="cores share CPUs: expect less throughput and more latency than with "
                   "--cores <= cpus")
    config = BrokerConfig(host=host, port=port, advertised_host=adv_host,
                          advertised_port=adv_port, data_dir=data_dir, node_id=args.node_id,
                          retention_check_s=args.retention_check_ms / 1000,
                          request_memory_bytes=args.queued_max_request_bytes,
                          connections_max_idle_ms=args.connections_max_idle_ms,
                          auto_create_topics_per_request=args.auto_create_topics_per_request,
                          rpc=rpc, **_defaults(args))
    try:
        sup = Supervisor(data_dir, args.cores, functools.partial(setup_core, config),
                         ring_capacity=RING_BYTES, pin=not args.no_pin,
                         spin_s=args.spin_us / 1e6, loop_slice_us=args.loop_slice_us)
        signal.signal(signal.SIGTERM, sup.request_stop)
        signal.signal(signal.SIGINT, sup.request_stop)
        sup.start()
    except NodeBusyError:
        print(f"redshank start: data directory {data_dir} is used by a running node",
              file=sys.stderr)
        return 2
    except OSError as exc:  # out of file descriptors or shared memory for this many cores
        print(f"redshank start: cannot start {args.cores} cores: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    admin: AdminServer | None = None
    if admin_sock is not None:
        admin = AdminServer(AdminConfig(args.node_id, data_dir, args.cores,
                                        f"{adv_host}:{adv_port}",
                                        None if rpc is None else str(rpc.advertised),
                                        sup.all_ready), admin_sock)
        admin.start()
    try:
        return _serve(sup, args, data_dir, f"kafka={adv_host}:{adv_port}"
                      + ("" if admin is None else f" admin={admin.address}"), rpc_field)
    finally:
        if admin is not None:
            admin.stop()


def _serve(sup: Supervisor, args: argparse.Namespace, data_dir: str, listeners: str,
           rpc_field: str) -> int:
    if not _wait_ready(sup):
        sup.stop()
        refused = read_refusal(data_dir)
        print(f"redshank start: {refused or 'a core failed to start (see the log above)'}",
              file=sys.stderr)
        return 1
    print(f"redshank ready {listeners} cores={args.cores} "
          f"node_id={args.node_id}{rpc_field} data_dir={data_dir}", flush=True)
    code = sup.run_forever()
    refused = read_refusal(data_dir)
    if refused is not None:
        print(f"redshank start: stopped: {refused}", file=sys.stderr)
        return 1
    return code


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
