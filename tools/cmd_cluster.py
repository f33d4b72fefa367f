"""`redshank cluster ...`: the cluster as a whole.

    redshank cluster info                        cluster id, controller, brokers
    redshank cluster health [--watch SECS]       brokers answering, partitions led and in sync
    redshank cluster config get [KEY]            a broker's configs (DescribeConfigs)
    redshank cluster config set KEY VALUE        IncrementalAlterConfigs on the broker resource
    redshank cluster partitions [--topic T]      leaders, replicas, ISR, state of each partition
    redshank cluster transfer-leadership TOPIC PARTITION --to BROKER
    redshank cluster start N ...     start N nodes on this machine (argparse: tools/cluster_cmd.py)
    redshank cluster status ...      a node's view of the controller, from its data dir

Everything but start and status talks Kafka to the cluster, through confluent-kafka's
AdminClient, so it works as well against Kafka itself. A leadership transfer is Kafka's: reorder
the partition's replicas with the new leader first (AlterPartitionReassignments, sent with our
codec as the Python binding has no call for it), then a preferred election (ElectLeaders).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click

from redshank.tools.cli import argparse_command
from redshank.tools.clikit import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNREACHABLE,
    CliError,
    admin_client,
    brokers_option,
    emit,
    error_name,
    json_option,
    kafka_admin_module,
    kafka_call,
    print_table,
    raw_connection,
    timeout_option,
)

__all__ = ["cluster"]


@click.group("cluster", context_settings={"help_option_names": ["-h", "--help"]})
def cluster() -> None:
    """The cluster: info, health, configs, partitions, leadership; start N local nodes."""


cluster.add_command(argparse_command("start", "redshank.tools.cluster_cmd",
                                     "start N nodes on this machine (node ids 1..N)"))
cluster.add_command(argparse_command(
    "status", "redshank.tools.cluster_status",
    "a node's view of the controller (cluster uuid, leader, members), from its data dir"))


def _metadata(admin: Any, timeout: float) -> Any:
    from confluent_kafka import KafkaException

    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise CliError(f"metadata: {exc.args[0] if exc.args else exc}", EXIT_UNREACHABLE) from exc


@cluster.command("info")
@brokers_option
@timeout_option
@json_option
def info(brokers: str, timeout: float, as_json: bool) -> None:
    """Cluster id, controller and brokers (id, host:port, rack)."""
    admin = admin_client(brokers, timeout)
    described = kafka_call(admin.describe_cluster(request_timeout=timeout), "describe cluster",
                           timeout)
    metadata = _metadata(admin, timeout)
    out = {
        "cluster_id": described.cluster_id,
        "controller": described.controller.id if described.controller is not None else None,
        "brokers": [{"id": n.id, "host": n.host, "port": n.port, "rack": n.rack}
                    for n in sorted(described.nodes, key=lambda n: n.id)],
        "topics": len(metadata.topics),
        "partitions": sum(len(t.partitions) for t in metadata.topics.values()),
    }
    if as_json:
        emit(out, as_json=True)
        return
    click.echo(f"CLUSTER     {out['cluster_id']}\nCONTROLLER  {out['controller']}\n"
               f"TOPICS      {out['topics']} ({out['partitions']} partitions)\n")
    print_table(("ID", "ADDRESS", "RACK"), [
        (f"{b['id']}*" if b["id"] == out["controller"] else b["id"],
         f"{b['host']}:{b['port']}", b["rack"]) for b in out["brokers"]])


def _partition_rows(metadata: Any, topics: Sequence[str] | None, internal: bool
                    ) -> list[dict[str, Any]]:
    """Every partition of `topics` (default: every topic) as Metadata gives it, with its state:
    ok, under-replicated (ISR smaller than the replicas) or leaderless (no leader: offline)."""
    names = sorted(metadata.topics) if topics is None else list(topics)
    live = set(metadata.brokers)
    rows = []
    for name in names:
        t = metadata.topics.get(name)
        if t is None or (t.error is not None and not t.partitions):
            raise CliError(f"topic {name}: no such topic", EXIT_NOT_FOUND)
        if topics is None and not internal and name.startswith("__"):
            continue
        for pid in sorted(t.partitions):
            p = t.partitions[pid]
            replicas, isr = list(p.replicas), list(p.isrs)
            leaderless = p.leader < 0
            state = ("leaderless" if leaderless
                     else "under-replicated" if len(isr) < len(replicas) else "ok")
            rows.append({"topic": name, "partition": pid,
                         "leader": None if leaderless else p.leader,
                         "replicas": replicas, "isr": isr,
                         "down": [r for r in replicas if r not in live],
                         "state": state,
                         "error": p.error.name() if p.error is not None else None})
    return rows


@cluster.command("partitions")
@click.option("--topic", "-t", "topics", multiple=True, metavar="T",
              help="only this topic (repeatable; default: every topic)")
@click.option("--internal", is_flag=True, help="include internal topics (__consumer_offsets)")
@brokers_option
@timeout_option
@json_option
def partitions(topics: tuple[str, ...], internal: bool, brokers: str, timeout: float,
               as_json: bool) -> None:
    """Each partition's leader, replicas (preferred first) and ISR, with its state: ok,
    under-replicated or leaderless (offline)."""
    admin = admin_client(brokers, timeout)
    rows = _partition_rows(_metadata(admin, timeout), topics or None, internal)
    emit(rows, as_json=as_json,
         columns=("TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "STATE"),
         rows=[(r["topic"], r["partition"], r["leader"], _ids(r["replicas"]), _ids(r["isr"]),
                r["state"] if not r["down"] else f"{r['state']} (down: {_ids(r['down'])})")
               for r in rows])


def _ids(ids: Sequence[int]) -> str:
    return "[" + ",".join(str(i) for i in ids) + "]"


def _reachable(host: str, port: int, timeout: float) -> str | None:
    """None if the broker answers ApiVersions within `timeout`, else why not."""
    from redshank.protocol.messages import api_versions as av
    from redshank.tools.kafka_raw import RawConnection

    try:
        with RawConnection(f"{host}:{port}", timeout) as conn:
            answer = conn.call(av.ApiVersionsRequest(), 0, av.ApiVersionsResponse)
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return error_name(answer.error_code) if answer.error_code else None


def health_report(admin: Any, timeout: float) -> dict[str, Any]:
    """The cluster's health as Metadata shows it: every broker answering, every partition led
    and fully in sync. Healthy when nothing is listed."""
    metadata = _metadata(admin, timeout)
    rows = _partition_rows(metadata, None, True)
    unreachable = {b.id: why for b in metadata.brokers.values()
                   if (why := _reachable(b.host, b.port, min(timeout, 5.0))) is not None}
    down = sorted({r for row in rows for r in row["down"]})
    leaderless = [f"{r['topic']}/{r['partition']}" for r in rows if r["state"] == "leaderless"]
    under = [f"{r['topic']}/{r['partition']}" for r in rows if r["state"] == "under-replicated"]
    return {"healthy": not (unreachable or down or leaderless or under),
            "brokers": sorted(metadata.brokers),
            "unreachable_brokers": [{"id": k, "error": v} for k, v in sorted(unreachable.items())],
            "down_brokers": down,
            "leaderless_partitions": leaderless,
            "under_replicated_partitions": under,
            "partitions": len(rows)}


def _health_text(h: dict[str, Any]) -> str:
    def few(items: Sequence[Any]) -> str:
        shown = ", ".join(str(i) for i in items[:10])
        return f"{len(items)}" + (f" ({shown}{', ...' if len(items) > 10 else ''})"
                                  if items else "")

    return "\n".join([
        f"HEALTHY                      {'yes' if h['healthy'] else 'no'}",
        f"BROKERS                      {_ids(h['brokers'])}",
        "UNREACHABLE BROKERS          " + few(
            [f"{u['id']}: {u['error']}" for u in h["unreachable_brokers"]]),
        f"DOWN BROKERS (replicas)      {few(h['down_brokers'])}",
        f"LEADERLESS PARTITIONS        {few(h['leaderless_partitions'])}",
        f"UNDER-REPLICATED PARTITIONS  {few(h['under_replicated_partitions'])}",
        f"PARTITIONS                   {h['partitions']}"])


@cluster.command("health")
@click.option("--watch", type=click.FloatRange(min=0.2), default=None, metavar="SECS",
              help="check again every SECS seconds until interrupted (exit code of the last)")
@brokers_option
@timeout_option
@json_option
@click.pass_context
def health(ctx: click.Context, watch: float | None, brokers: str, timeout: float,
           as_json: bool) -> None:
    """Every broker reachable, every partition led and in sync: exit 0 if so, 1 if not."""
    admin = admin_client(brokers, timeout)
    while True:
        report = health_report(admin, timeout)
        emit(report, as_json=as_json, text=_health_text(report))
        if watch is None:
            break
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            break
        if not as_json:
            click.echo()
    ctx.exit(EXIT_OK if report["healthy"] else EXIT_ERROR)


@cluster.group("config", no_args_is_help=True)
def config() -> None:
    """A broker's configs (DescribeConfigs / IncrementalAlterConfigs on the broker resource)."""


def _broker_id(admin: Any, broker: int | None, timeout: float) -> int:
    """`broker`, or the broker that answered Metadata; CliError(EXIT_NOT_FOUND) if Metadata
    lists no such broker (librdkafka would wait out the timeout for it)."""
    metadata = _metadata(admin, timeout)
    if broker is None:
        return int(metadata.orig_broker_id)
    if broker not in metadata.brokers:
        raise CliError(f"no broker {broker} (brokers {_ids(sorted(metadata.brokers))})",
                       EXIT_NOT_FOUND)
    return broker


@config.command("get")
@click.argument("key", required=False)
@click.option("--broker", "-b", type=int, default=None, metavar="ID",
              help="whose configs (default: the broker that answered)")
@brokers_option
@timeout_option
@json_option
def config_get(key: str | None, broker: int | None, brokers: str, timeout: float,
               as_json: bool) -> None:
    """Every config of a broker, or only KEY's value, as Kafka's DescribeConfigs answers."""
    ka = kafka_admin_module()
    admin = admin_client(brokers, timeout)
    node = _broker_id(admin, broker, timeout)
    resource = ka.ConfigResource(ka.ResourceType.BROKER, str(node))
    futures = admin.describe_configs([resource], request_timeout=timeout)
    entries = kafka_call(next(iter(futures.values())), f"configs of broker {node}", timeout)
    rows = [{"name": e.name, "value": e.value, "source": _source(e.source),
             "read_only": bool(e.is_read_only), "sensitive": bool(e.is_sensitive)}
            for e in sorted(entries.values(), key=lambda e: e.name)]
    if key is not None:
        rows = [r for r in rows if r["name"] == key]
        if not rows:
            raise CliError(f"broker {node}: no config {key!r}", EXIT_NOT_FOUND)
        emit(rows[0], as_json=as_json, text=str(rows[0]["value"]))
        return
    emit(rows, as_json=as_json, columns=("NAME", "VALUE", "SOURCE", "READ-ONLY"),
         rows=[(r["name"], "(sensitive)" if r["sensitive"] else r["value"], r["source"],
                "yes" if r["read_only"] else "no") for r in rows],
         title=None)


def _source(source: Any) -> str:
    """DescribeConfigs' config_source as Kafka names it (DEFAULT, STATIC_BROKER, ...); the
    binding gives an int or its ConfigSource enum."""
    if isinstance(source, int):
        try:
            source = kafka_admin_module().ConfigSource(int(source))
        except ValueError:
            return str(source)
    name = getattr(source, "name", str(source))
    return str(name).removesuffix("_CONFIG")


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--broker", "-b", type=int, default=None, metavar="ID",
              help="whose config (default: the broker that answered)")
@brokers_option
@timeout_option
@json_option
def config_set(key: str, value: str, broker: int | None, brokers: str, timeout: float,
               as_json: bool) -> None:
    """Set a broker config (IncrementalAlterConfigs SET); Kafka's refusal is printed as is."""
    ka = kafka_admin_module()
    admin = admin_client(brokers, timeout)
    node = _broker_id(admin, broker, timeout)
    resource = ka.ConfigResource(ka.ResourceType.BROKER, str(node), incremental_configs=[
        ka.ConfigEntry(key, value, incremental_operation=ka.AlterConfigOpType.SET)])
    futures = admin.incremental_alter_configs([resource], request_timeout=timeout)
    kafka_call(next(iter(futures.values())), f"set {key} on broker {node}", timeout)
    emit({"broker": node, "name": key, "value": value}, as_json=as_json,
         text=f"broker {node}: {key}={value}")


def _controller_address(metadata: Any) -> str | None:
    b = metadata.brokers.get(metadata.controller_id)
    return None if b is None else f"{b.host}:{b.port}"


def _reorder(brokers: str, metadata: Any, topic: str, partition: int, order: list[int],
             timeout: float) -> None:
    """AlterPartitionReassignments (45) with the same replicas in a new order, sent to the
    controller with our codec: confluent-kafka's AdminClient has no call for it."""
    from redshank.protocol.messages import alter_partition_reassignments as apr

    request = apr.AlterPartitionReassignmentsRequest(
        timeout_ms=int(timeout * 1000), topics=(apr.ReassignableTopic(name=topic, partitions=(
            apr.ReassignablePartition(partition_index=partition, replicas=tuple(order)),)),))
    with raw_connection(_controller_address(metadata) or brokers, timeout) as conn:
        try:
            answer = conn.call(request, 0, apr.AlterPartitionReassignmentsResponse)
        except OSError as exc:
            raise CliError(f"reassign {topic}/{partition}: {exc}", EXIT_UNREACHABLE) from exc
    codes = [(answer.error_code, answer.error_message)] + [
        (p.error_code, p.error_message) for t in answer.responses for p in t.partitions]
    for code, message in codes:
        if code:
            raise CliError(f"reassign {topic}/{partition} to {_ids(order)}: {error_name(code)}"
                           + (f": {message}" if message else ""), EXIT_ERROR)


def _elect_preferred(admin: Any, topic: str, partition: int, timeout: float) -> str | None:
    """ElectLeaders PREFERRED for one partition: None if elected or not needed, else Kafka's
    error. (confluent-kafka 2.16's elect_leaders fails on its timeout keyword arguments, so it
    runs with its defaults: socket.timeout.ms, set from --timeout by `client_config`.)"""
    from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition

    try:
        result = admin.elect_leaders(ElectionType.PREFERRED,
                                     [TopicPartition(topic, partition)]).result(timeout + 5)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        return f"{err.name()}: {err.str()}" if isinstance(err, KafkaError) else str(exc)
    except TimeoutError:
        return "no answer"
    for err in result.values():
        if err is not None and err.code() != KafkaError.ELECTION_NOT_NEEDED:
            return f"{err.name()}: {err.str()}"
    return None


@cluster.command("transfer-leadership")
@click.argument("topic")
@click.argument("partition", type=click.IntRange(min=0))
@click.option("--to", "to", type=int, required=True, metavar="BROKER",
              help="the broker (one of the partition's replicas) to lead it")
@click.option("--wait", type=click.FloatRange(min=0.0), default=30.0, show_default=True,
              metavar="SECS", help="how long to wait for metadata to name the new leader")
@brokers_option
@timeout_option
@json_option
def transfer_leadership(topic: str, partition: int, to: int, wait: float, brokers: str,
                        timeout: float, as_json: bool) -> None:
    """Move PARTITION of TOPIC's leadership to BROKER: its replicas reordered with BROKER first
    (AlterPartitionReassignments), a preferred election (ElectLeaders), then a wait until
    Metadata names BROKER the leader."""
    admin = admin_client(brokers, timeout)
    metadata = _metadata(admin, timeout)
    row = next((r for r in _partition_rows(metadata, [topic], True)
                if r["partition"] == partition), None)
    if row is None:
        raise CliError(f"{topic}/{partition}: no such partition", EXIT_NOT_FOUND)
    if to not in row["replicas"]:
        raise CliError(f"{topic}/{partition}: broker {to} is not one of its replicas "
                       f"{_ids(row['replicas'])} (leadership moves only between replicas)",
                       EXIT_ERROR)
    if to not in row["isr"]:
        raise CliError(f"{topic}/{partition}: broker {to} is not in sync (ISR "
                       f"{_ids(row['isr'])}): it cannot lead until it has caught up",
                       EXIT_ERROR)
    before = row["leader"]
    started = time.monotonic()
    if before != to:
        order = [to, *(r for r in row["replicas"] if r != to)]
        if row["replicas"][0] != to:
            _reorder(brokers, metadata, topic, partition, order, timeout)
        election = _elect_preferred(admin, topic, partition, timeout)
        deadline = time.monotonic() + wait
        while True:
            leader = _leader(admin, topic, partition, timeout)
            if leader == to:
                break
            if time.monotonic() >= deadline:
                why = f" (ElectLeaders: {election})" if election else ""
                raise CliError(f"{topic}/{partition}: still led by {leader} {wait:g} s after "
                               f"the transfer to {to}{why}", EXIT_ERROR)
            time.sleep(0.2)
    out = {"topic": topic, "partition": partition, "before": before, "leader": to,
           "seconds": round(time.monotonic() - started, 3)}
    emit(out, as_json=as_json, text=(
        f"{topic}/{partition}: leader {before} -> {to} in {out['seconds']:.2f} s"
        if before != to else f"{topic}/{partition}: already led by {to}"))


def _leader(admin: Any, topic: str, partition: int, timeout: float) -> int | None:
    metadata = _metadata(admin, timeout)
    t = metadata.topics.get(topic)
    p = None if t is None else t.partitions.get(partition)
    return None if p is None or p.leader < 0 else int(p.leader)
