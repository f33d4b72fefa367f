"""`redshank transform ...`: deploy, list and delete data transforms (Python classes the broker
runs next to each partition of their input topic; `actors/embed/transform.py`).

    redshank transform deploy --name N --input TOPIC --output TOPIC[,TOPIC] module:Class
    redshank transform list [--json]      per instance: status, lag, processed, failed, error
    redshank transform delete --name N

Transport: Kafka only, with confluent-kafka (the same `--brokers` as every command). A
deployment is a record of the compacted topic `__transforms` (key: the name; value: the
deployment with the module's source; a tombstone deletes it), which every broker core follows
(`actors/transform_spec.py`). Status, counts and progress come back as the commit metadata of
each instance in the consumer group `__transform.NAME`, lag from the input's high watermarks.

`module:Class` is resolved like `python -c "import module"` from the current directory; the
module must be ONE source file (packages and modules importing sibling files are not supported
yet): the file is read here and shipped to the broker, which loads it under its own module name
without the user's path. Before deploying, the file is compiled and executed the same way (the
current directory not on the path) and the class looked up: a file that fails is refused (exit
1) with the error. On a cluster, `__transforms` is a replicated topic like any other (the
cluster's default replication factor), each instance runs on the node and core leading its
input partition, and `list` shows that node. Exit codes: tools/clikit.py.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from typing import Any

import click

from redshank.actors.embed.transform import TransformLoadError, load_transform
from redshank.actors.transform_spec import (
    HEARTBEAT_S,
    TRANSFORMS_TOPIC,
    Deployment,
    Status,
    group_of,
)
from redshank.tools.clikit import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    admin_client,
    brokers_option,
    client_config,
    cluster_metadata,
    emit,
    error_name,
    json_option,
    kafka_admin_module,
    kafka_call,
    raw_connection,
    timeout_option,
)

__all__ = ["transform"]

# A report older than this is shown "stopped": its instance is gone without saying so (a
# killed broker), or moved and not reporting yet.
STALE_S = 3 * HEARTBEAT_S


@click.group("transform", context_settings={"help_option_names": ["-h", "--help"]})
def transform() -> None:
    """Data transforms: Python classes run by the broker next to their input partitions."""


def load_source(target: str) -> tuple[str, str, str]:
    """(filename, source, class name) of `module:Class`, checked to load; CliError if not."""
    module, sep, cls = target.partition(":")
    if not sep or not module or not cls:
        raise CliError(f"{target!r}: expected module:Class", EXIT_USAGE)
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise CliError(f"cannot find module {module!r}: {exc}", EXIT_ERROR) from exc
    finally:
        if added:
            sys.path.remove(cwd)
    if spec is None or spec.origin is None or not os.path.isfile(spec.origin):
        raise CliError(f"cannot find module {module!r} (from {cwd})", EXIT_ERROR)
    if spec.submodule_search_locations is not None or not spec.origin.endswith(".py"):
        raise CliError(f"{module!r} is not a single .py file ({spec.origin}): packages and "
                       "multi-file modules are not supported yet", EXIT_ERROR)
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    try:
        # As the broker will: the file alone, under a module name of its own.
        load_transform(f"check.{module}", source, spec.origin, cls)
    except TransformLoadError as exc:
        raise CliError(f"cannot load {target}: {exc}", EXIT_ERROR) from exc
    return spec.origin, source, cls


def _ensure_transforms_topic(admin: Any, timeout: float) -> None:
    ka = kafka_admin_module()
    from confluent_kafka import KafkaError, KafkaException

    futures = admin.create_topics([ka.NewTopic(
        TRANSFORMS_TOPIC, num_partitions=1, replication_factor=-1,
        config={"cleanup.policy": "compact"})], request_timeout=timeout)
    try:
        futures[TRANSFORMS_TOPIC].result(timeout=timeout)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            kafka_call(futures[TRANSFORMS_TOPIC], f"create {TRANSFORMS_TOPIC}", timeout)


def _write(brokers: str, timeout: float, key: str, value: bytes | None) -> None:
    """One record of `__transforms`, acknowledged by all in-sync replicas."""
    from confluent_kafka import Producer

    producer = Producer(client_config(brokers, timeout, **{
        "acks": "all", "enable.idempotence": True,
        "message.timeout.ms": max(1000, int(timeout * 1000))}))
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err.str())

    producer.produce(TRANSFORMS_TOPIC, value=value, key=key.encode(), on_delivery=delivered)
    left = producer.flush(timeout)
    if left:
        raise CliError(f"write to {TRANSFORMS_TOPIC}: no answer within {timeout:g} s")
    if errors:
        raise CliError(f"write to {TRANSFORMS_TOPIC}: {errors[0]}")


def read_deployments(brokers: str, timeout: float) -> dict[str, Deployment]:
    """Every deployment in `__transforms` (read to its high watermark)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(client_config(brokers, timeout, **{
        "group.id": "redshank-cli-transforms", "enable.auto.commit": False,
        "enable.partition.eof": True, "isolation.level": "read_uncommitted"}))
    try:
        md = cluster_metadata(consumer, brokers, timeout)
        if TRANSFORMS_TOPIC not in md.topics:
            return {}
        lo, hi = consumer.get_watermark_offsets(TopicPartition(TRANSFORMS_TOPIC, 0),
                                                timeout=timeout)
        found: dict[str, Deployment] = {}
        if hi <= lo:
            return found
        consumer.assign([TopicPartition(TRANSFORMS_TOPIC, 0, lo)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    break
                raise CliError(f"read {TRANSFORMS_TOPIC}: {err.str()}")
            name = (msg.key() or b"").decode(errors="replace")
            value = msg.value()
            if value is None:
                found.pop(name, None)
            else:
                found[name] = Deployment.decode(value)
            if (msg.offset() or 0) + 1 >= hi:
                break
        else:
            raise CliError(f"read {TRANSFORMS_TOPIC}: not read within {timeout:g} s",
                           EXIT_ERROR)
        return found
    finally:
        consumer.close()


@transform.command("deploy", short_help="deploy a transform (module:Class) on a topic")
@click.option("--name", required=True, help="the deployment's name (redeploying replaces it)")
@click.option("--input", "input_topic", required=True, metavar="TOPIC", help="input topic")
@click.option("--output", "outputs", required=True, metavar="TOPIC[,TOPIC]",
              help="output topic(s); the first is the default of Output.topic")
@click.argument("target", metavar="module:Class")
@brokers_option
@timeout_option
@json_option
def deploy(name: str, input_topic: str, outputs: str, target: str, brokers: str,
           timeout: float, as_json: bool) -> None:
    """Deploy TARGET (module:Class, a Transform subclass in one .py file) as NAME."""
    outs = tuple(t.strip() for t in outputs.split(",") if t.strip())
    if not outs:
        raise CliError("--output names no topic", EXIT_USAGE)
    if not name or any(c in name for c in "/\\\0"):
        raise CliError(f"bad transform name {name!r}", EXIT_USAGE)
    filename, source, cls = load_source(target)
    admin = admin_client(brokers, timeout)
    topics = cluster_metadata(admin, brokers, timeout).topics
    for topic in (input_topic, *outs):
        if topic not in topics:
            raise CliError(f"topic {topic!r} does not exist", EXIT_NOT_FOUND)
    if input_topic in outs:
        raise CliError("the input topic cannot be an output (it would feed itself)", EXIT_USAGE)
    _ensure_transforms_topic(admin, timeout)
    dep = Deployment(name, input_topic, outs, cls, os.path.basename(filename), source)
    _write(brokers, timeout, name, dep.encode())
    emit({"deployed": name, "input": input_topic, "outputs": list(outs), "class": target},
         as_json=as_json, text=f"deployed {name}: {target} {input_topic} -> {','.join(outs)}")


@transform.command("delete", short_help="delete a transform (its instances stop)")
@click.option("--name", required=True, help="the deployment's name")
@brokers_option
@timeout_option
@json_option
def delete(name: str, brokers: str, timeout: float, as_json: bool) -> None:
    """Delete NAME. Its committed offsets stay in group __transform.NAME (a new deployment of
    the same name resumes there; `redshank group delete __transform.NAME` starts over)."""
    admin_client(brokers, timeout)
    if name not in read_deployments(brokers, timeout):
        raise CliError(f"transform {name!r} does not exist", EXIT_NOT_FOUND)
    _write(brokers, timeout, name, None)
    emit({"deleted": name}, as_json=as_json, text=f"deleted {name}")


def _committed(brokers: str, timeout: float, group: str, topic: str, partitions: int
               ) -> dict[int, tuple[int, str | None]]:
    """partition -> (committed offset, metadata) of `group`, by OffsetFetch from our own codec:
    confluent-kafka 2.x's binding reads a committed offset's metadata past its end (as a
    NUL-terminated string), which garbles the instances' status."""
    from redshank.protocol.messages import find_coordinator as fc
    from redshank.protocol.messages import offset_fetch as of

    with raw_connection(brokers, timeout) as conn:
        found = conn.call(fc.FindCoordinatorRequest(key=group, key_type=0), 3,
                          fc.FindCoordinatorResponse)
    if found.error_code:
        raise CliError(f"find the coordinator of {group}: {error_name(found.error_code)}")
    with raw_connection(f"{found.host}:{found.port}", timeout) as conn:
        answer = conn.call(of.OffsetFetchRequest(group_id=group, topics=(
            of.OffsetFetchRequestTopic(topic, tuple(range(partitions))),)), 7,
            of.OffsetFetchResponse)
    if answer.error_code:
        raise CliError(f"offsets of {group}: {error_name(answer.error_code)}")
    return {p.partition_index: (p.committed_offset, p.metadata)
            for t in answer.topics for p in t.partitions if p.error_code == 0}


def _instances(brokers: str, timeout: float, dep: Deployment, partitions: int
               ) -> list[dict[str, Any]]:
    from confluent_kafka import Consumer, TopicPartition

    committed = _committed(brokers, timeout, group_of(dep.name), dep.input, partitions)
    consumer = Consumer(client_config(brokers, timeout, **{
        "group.id": "redshank-cli-transforms", "enable.auto.commit": False}))
    try:
        now_ms = time.time() * 1000
        rows = []
        for p in range(partitions):
            _lo, hi = consumer.get_watermark_offsets(TopicPartition(dep.input, p),
                                                     timeout=timeout)
            offset, metadata = committed.get(p, (-1, None))
            status = Status.decode(metadata)
            state = "starting" if status is None else status.state
            if status is not None and state != "stopped" and now_ms - status.at > STALE_S * 1000:
                state = "stopped"
            rows.append({
                "partition": p, "status": state, "offset": offset if offset >= 0 else None,
                "lag": hi - max(offset, 0), "high_watermark": hi,
                "processed": None if status is None else status.processed,
                "failed": None if status is None else status.failed,
                "error": None if status is None else status.error,
                "core": None if status is None else status.core,
                "node": None if status is None else status.node,
            })
        return rows
    finally:
        consumer.close()


@transform.command("list", short_help="deployed transforms: status, lag, counts per instance")
@brokers_option
@timeout_option
@json_option
def list_transforms(brokers: str, timeout: float, as_json: bool) -> None:
    """Every deployed transform and its instances (one per input partition): status
    (starting, running, failing, stopped), lag, processed and failed counts, last error."""
    admin = admin_client(brokers, timeout)
    deps = read_deployments(brokers, timeout)
    topics = cluster_metadata(admin, brokers, timeout).topics
    out = []
    rows = []
    for name in sorted(deps):
        dep = deps[name]
        tmd = topics.get(dep.input)
        instances = [] if tmd is None else _instances(brokers, timeout, dep,
                                                      len(tmd.partitions))
        out.append({"name": name, "input": dep.input, "outputs": list(dep.outputs),
                    "class": f"{dep.filename}:{dep.cls}", "instances": instances})
        for i in instances:
            rows.append((name, dep.input, ",".join(dep.outputs), i["partition"], i["status"],
                         i["lag"], i["processed"], i["failed"], i["error"]))
        if not instances:
            rows.append((name, dep.input, ",".join(dep.outputs), None, "no input", None, None,
                         None, None))
    emit(out, as_json=as_json, columns=("NAME", "INPUT", "OUTPUTS", "PARTITION", "STATUS",
                                        "LAG", "PROCESSED", "FAILED", "LAST ERROR"), rows=rows)
