"""`redshank cluster start`: N broker nodes on this machine, as child processes, until Ctrl-C.

    redshank cluster start [-n N] [--data-dir D] [--cores C] [--base-port P] [--host H]
                           [--admin-base-port A]

Node i (1..N) runs `redshank start --node-id i` with its data in `D/node-i` and its log in
`D/node-i.log`, Kafka on port P + i - 1 and internal RPC from port P + N + (i - 1) * C (core c of
node i on that base + c); every node gets the same `--seeds`, the RPC addresses of the first
min(N, 3) nodes, which thus run the controller (Raft group 0: see `redshank cluster status`).
Its admin HTTP API listens on port A + i - 1 (default 9644; 0: free ports, the default with
`--base-port 0`). `--base-port 0` picks free ports. Prints one line per node, then
`bootstrap=H:p1,H:p2,...` once all are ready. Ctrl-C or SIGTERM stops them all (SIGTERM to each,
a bounded wait, then SIGKILL of what is left); a node that exits on its own is reported and the
others are stopped (exit 1). Each node runs in a process group of its own, in this session: with
autogroup scheduling a session is a CPU group (see `tools/bench/_broker.py`), and a terminal's
Ctrl-C reaches only this process, which stops the nodes in order. Cores are not pinned
(`--no-pin`): the nodes share this machine's CPUs. Must not know what a node does inside.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import field
from typing import Any

from redshank.protocol.fast_dataclass import dataclass

__all__ = ["main", "plan_ports"]

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
MAX_SEEDS = 3


@dataclass(slots=True)
class _Node:
    node_id: int
    kafka_port: int
    rpc_port: int
    data_dir: str
    log_path: str
    proc: subprocess.Popen[bytes] | None = None
    buf: bytes = field(default=b"")
    ready: str = ""


def plan_ports(n: int, cores: int, base_port: int) -> list[tuple[int, int]]:
    """(Kafka port, RPC base port) per node; base 0 asks the kernel for free ports."""
    if base_port:
        return [(base_port + i, base_port + n + i * cores) for i in range(n)]
    taken: set[int] = set()
    plan = []
    for _ in range(n):
        kafka = _free_run(1, taken)
        plan.append((kafka, _free_run(cores, taken)))
    return plan


def _free_run(count: int, taken: set[int]) -> int:
    """A port p with p..p+count-1 free now (and not handed out before).

    Drawn below the kernel's ephemeral range (`ip_local_port_range`): a port the kernel hands
    out to an outgoing connection (any client running meanwhile) is never one of these, so the
    run stays free between this check and the node's bind. (A port the kernel picked for a bind
    to 0 and released at once could go to the next connect before the node binds it: seen as a
    node's core failing to start with its RPC port in use.) Falls back to the kernel's choice
    when the range leaves no room below it."""
    low, high = 10_000, _ephemeral_low() - count
    rng = random.SystemRandom()
    for _ in range(200):
        if high > low:
            base = rng.randrange(low, high)
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                base = int(s.getsockname()[1])
        ports = range(base, base + count)
        if base + count - 1 <= 65535 and not taken.intersection(ports) \
                and all(_bindable(p) for p in ports):
            taken.update(ports)
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 where it cannot be read)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="redshank cluster start",
                                description=__doc__.splitlines()[0])
    p.add_argument("-n", "--nodes", type=int, default=3, help="nodes to start (default 3)")
    p.add_argument("--data-dir", default="./redshank-cluster",
                   help="parent of each node's data dir, node-1 ... (default ./redshank-cluster)")
    p.add_argument("--cores", type=int, default=1, help="core processes per node (default 1)")
    p.add_argument("--base-port", type=int, default=9092,
                   help="Kafka port of node 1 (default 9092); node i: base + i - 1; RPC ports "
                        "follow the Kafka ports; 0 picks free ports")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--admin-base-port", type=int, default=None,
                   help="admin HTTP API port of node 1 (default 9644, or 0 with --base-port 0); "
                        "node i: base + i - 1; 0 picks free ports")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    problem = _check(args)
    if problem is not None:
        print(f"redshank cluster start: {problem}", file=sys.stderr)
        return 2
    data_dir = os.path.abspath(args.data_dir)
    os.makedirs(data_dir, exist_ok=True)
    nodes = [_Node(i + 1, kafka, rpc, os.path.join(data_dir, f"node-{i + 1}"),
                   os.path.join(data_dir, f"node-{i + 1}.log"))
             for i, (kafka, rpc) in enumerate(plan_ports(args.nodes, args.cores,
                                                         args.base_port))]
    seeds = ",".join(f"{args.host}:{n.rpc_port}" for n in nodes[:MAX_SEEDS])
    stop: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stop.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for node in nodes:
            _spawn(node, args, seeds)
        return _supervise(nodes, args.host, stop)
    finally:
        _stop_all(nodes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check(args: argparse.Namespace) -> str | None:
    if args.nodes < 1:
        return "-n must be >= 1"
    if args.cores < 1:
        return "--cores must be >= 1"
    last = args.base_port + args.nodes + args.nodes * args.cores - 1
    if args.base_port < 0 or (args.base_port and last > 65535):
        return f"--base-port {args.base_port}: the ports needed pass 65535"
    if args.admin_base_port is not None and not (
            args.admin_base_port == 0 or 0 < args.admin_base_port + args.nodes - 1 <= 65535):
        return f"--admin-base-port {args.admin_base_port}: the ports needed pass 65535"
    return None


def _admin_port(node_id: int, args: argparse.Namespace) -> int:
    base = args.admin_base_port
    if base is None:
        base = 0 if args.base_port == 0 else 9644
    return 0 if base == 0 else base + node_id - 1


def _spawn(node: _Node, args: argparse.Namespace, seeds: str) -> None:
    cmd = [sys.executable, "-m", "redshank.tools.cli", "start", "--node-id", str(node.node_id),
           "--kafka-addr", f"{args.host}:{node.kafka_port}",
           "--rpc-addr", f"{args.host}:{node.rpc_port}", "--seeds", seeds,
           "--data-dir", node.data_dir, "--cores", str(args.cores), "--no-pin",
           "--admin-addr", f"{args.host}:{_admin_port(node.node_id, args)}"]
    with open(node.log_path, "ab") as log:
        # Own process group (signals from the terminal reach only us), same session (one
        # autogroup with whatever drives the cluster from this terminal).
        node.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                     process_group=0)


def _supervise(nodes: list[_Node], host: str, stop: list[int]) -> int:
    if not _wait_ready(nodes, stop):
        return 1 if not stop else 0
    for node in nodes:
        admin = node.ready.split(" admin=", 1)[1].split()[0] if " admin=" in node.ready else "-"
        print(f"node {node.node_id} kafka={host}:{node.kafka_port} admin={admin} "
              f"rpc={host}:{node.rpc_port} data_dir={node.data_dir} log={node.log_path}")
    print("bootstrap=" + ",".join(f"{host}:{n.kafka_port}" for n in nodes), flush=True)
    while not stop:
        for node in nodes:
            assert node.proc is not None
            if node.proc.poll() is not None:
                _report_exit(node, "exited unexpectedly")
                return 1
        time.sleep(0.1)
    return 0


def _wait_ready(nodes: list[_Node], stop: list[int]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    sel = selectors.DefaultSelector()
    waiting: dict[int, _Node] = {}
    for node in nodes:
        assert node.proc is not None and node.proc.stdout is not None
        waiting[node.proc.stdout.fileno()] = node
        sel.register(node.proc.stdout.fileno(), selectors.EVENT_READ)
    try:
        while waiting and not stop:
            left = deadline - time.monotonic()
            if left <= 0:
                for node in waiting.values():
                    _report_exit(node, f"not ready within {READY_TIMEOUT_S:.0f} s")
                return False
            for key, _ in sel.select(min(left, 0.2)):
                node = waiting[int(key.fd)]
                chunk = os.read(int(key.fd), 4096)
                node.buf += chunk
                if b"\n" in node.buf or not chunk:
                    line = node.buf.decode(errors="replace").split("\n", 1)[0]
                    if not line.startswith("redshank ready "):
                        _report_exit(node, f"failed to start ({line!r})")
                        return False
                    node.ready = line
                    del waiting[int(key.fd)]
                    sel.unregister(int(key.fd))
        return not waiting
    finally:
        sel.close()


def _report_exit(node: _Node, what: str) -> None:
    assert node.proc is not None
    code = node.proc.poll()
    print(f"redshank cluster start: node {node.node_id} {what} (exit code {code}); stopping "
          f"the others. Last lines of {node.log_path}:", file=sys.stderr)
    print(_tail(node.log_path), file=sys.stderr)


def _tail(path: str, lines: int = 10) -> str:
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _stop_all(nodes: list[_Node]) -> None:
    """SIGTERM every live node, wait up to STOP_TIMEOUT_S in all, SIGKILL each group left."""
    live = [n.proc for n in nodes if n.proc is not None and n.proc.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in live:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for node in nodes:
        child = node.proc
        if child is None:
            continue
        if child.poll() is None:
            print(f"redshank cluster start: node {node.node_id} did not stop in "
                  f"{STOP_TIMEOUT_S:.0f} s: killed", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
