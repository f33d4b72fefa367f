"""`redshank topic ...`: create, list, describe, delete and configure topics; produce and consume.

    redshank topic create NAME... [-p N] [-r N] [-c k=v]   (-1: the broker's default)
    redshank topic list [--internal]
    redshank topic describe NAME                            summary, configs, partitions
    redshank topic delete NAME...
    redshank topic alter-config NAME --set k=v --delete k   IncrementalAlterConfigs
    redshank topic add-partitions NAME -n TOTAL
    redshank topic trim-prefix NAME -o OFFSET (-p P | --all-partitions)  DeleteRecords
    redshank topic produce TOPIC [-f '%k %v\\n']            records from stdin
    redshank topic consume TOPIC [-o start|end|N|-N|@MS[:end|:N]] [-g GROUP] [-n N] [-f FMT]

Admin commands run through confluent-kafka's AdminClient (tools/clikit.py); produce and consume
through its Producer and Consumer, with format strings from tools/record_format.py. Exit codes:
tools/clikit.py. Consume and produce are in tools/cmd_topic_io.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import click

from redshank.tools.clikit import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    admin_client,
    brokers_option,
    cluster_metadata,
    emit,
    json_option,
    kafka_call,
    parse_kv,
    print_table,
    timeout_option,
    topic_metadata,
)
from redshank.tools.cmd_topic_io import consume, produce

__all__ = ["topic"]


@click.group("topic", context_settings={"help_option_names": ["-h", "--help"]})
def topic() -> None:
    """Topics: create, list, describe, delete, configure; produce to and consume from them."""


topic.add_command(produce)
topic.add_command(consume)


def _ka() -> Any:
    """confluent_kafka.admin, untyped (its stubs do not export the names it defines)."""
    return importlib.import_module("confluent_kafka.admin")


def _each(futures: dict[Any, Any], what: str, timeout: float
          ) -> tuple[list[str], list[CliError]]:
    """Wait for every per-topic future: the names that succeeded, and the failures in order."""
    done: list[str] = []
    failed: list[CliError] = []
    for key, fut in futures.items():
        name = str(key)
        try:
            kafka_call(fut, f"{what} {name}", timeout)
            done.append(name)
        except CliError as exc:
            failed.append(exc)
    return done, failed


def _finish(failed: list[CliError]) -> None:
    """One line per failed topic on stderr; the exit code is the first failure's."""
    for exc in failed[:-1]:
        click.echo(f"redshank: {exc.message}", err=True)
    if failed:
        raise CliError(failed[-1].message, failed[0].code)


@topic.command("create", short_help="create topics (partitions, replicas, configs)")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-p", "--partitions", type=int, default=-1, show_default=True,
              help="partitions per topic (-1: the broker's default)")
@click.option("-r", "--replicas", type=int, default=-1, show_default=True,
              help="replication factor (-1: the broker's default)")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="a topic config, repeatable (e.g. -c retention.ms=60000)")
@click.option("--dry-run", is_flag=True, help="validate only; create nothing")
@brokers_option
@timeout_option
@json_option
def create(names: tuple[str, ...], partitions: int, replicas: int, configs: tuple[str, ...],
           dry_run: bool, brokers: str, timeout: float, as_json: bool) -> None:
    """Create topics."""
    NewTopic = _ka().NewTopic
    config = dict(parse_kv(configs))
    admin = admin_client(brokers, timeout)
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replicas, config=config)
         for n in names], request_timeout=timeout, validate_only=dry_run)
    done, failed = _each(futures, "create", timeout)
    verb = "valid" if dry_run else "created"
    if done or as_json:
        emit({"created" if not dry_run else "valid": done}, as_json=as_json,
             columns=("TOPIC", "STATUS"), rows=[(n, verb) for n in done])
    _finish(failed)


@topic.command("list", short_help="list topics: name, partitions, replicas")
@click.option("-i", "--internal", is_flag=True, help="include internal topics (__*)")
@brokers_option
@timeout_option
@json_option
def list_topics(internal: bool, brokers: str, timeout: float, as_json: bool) -> None:
    """List topics: name, partitions, replicas."""
    admin = admin_client(brokers, timeout)
    md = cluster_metadata(admin, brokers, timeout)
    rows = []
    for name in sorted(md.topics):
        if name.startswith("__") and not internal:
            continue
        parts = md.topics[name].partitions
        replicas = max((len(p.replicas) for p in parts.values()), default=0)
        rows.append((name, len(parts), replicas))
    emit([{"name": n, "partitions": p, "replicas": r} for n, p, r in rows], as_json=as_json,
         columns=("NAME", "PARTITIONS", "REPLICAS"), rows=rows)


@topic.command("describe", short_help="summary, configs with their source, partitions with offsets")
@click.argument("name")
@brokers_option
@timeout_option
@json_option
def describe(name: str, brokers: str, timeout: float, as_json: bool) -> None:
    """A topic's summary, configs (with their source) and partitions (leader, replicas, ISR,
    log start offset, high watermark)."""
    from confluent_kafka import TopicPartition
    ConfigResource, OffsetSpec = _ka().ConfigResource, _ka().OffsetSpec
    admin = admin_client(brokers, timeout)
    tmd = topic_metadata(admin, name, brokers, timeout)
    resource = ConfigResource("topic", name)
    futs = admin.describe_configs([resource], request_timeout=timeout)
    entries = kafka_call(next(iter(futs.values())), f"describe configs of {name}", timeout)
    configs = [{"name": e.name, "value": None if e.is_sensitive else e.value,
                "source": _source_name(e.source)}
               for e in sorted(entries.values(), key=lambda e: e.name)]
    ids = sorted(tmd.partitions)
    starts = _offsets(admin, name, ids, OffsetSpec.earliest(), TopicPartition, timeout)
    ends = _offsets(admin, name, ids, OffsetSpec.latest(), TopicPartition, timeout)
    partitions = [{"partition": p, "leader": tmd.partitions[p].leader,
                   "replicas": list(tmd.partitions[p].replicas),
                   "isr": list(tmd.partitions[p].isrs),
                   "log_start_offset": starts[p], "high_watermark": ends[p]} for p in ids]
    summary = {"name": name, "partitions": len(ids),
               "replicas": max((len(p["replicas"]) for p in partitions), default=0),
               "internal": name.startswith("__")}
    if as_json:
        emit({"summary": summary, "configs": configs, "partitions": partitions}, as_json=True)
        return
    print_table(("KEY", "VALUE"), [(k, v) for k, v in summary.items()], title="SUMMARY")
    click.echo()
    print_table(("KEY", "VALUE", "SOURCE"),
                [(c["name"], c["value"], c["source"]) for c in configs], title="CONFIGS")
    click.echo()
    print_table(("PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK"),
                [(p["partition"], p["leader"], _ids(p["replicas"]), _ids(p["isr"]),
                  p["log_start_offset"], p["high_watermark"]) for p in partitions],
                title="PARTITIONS")


def _source_name(source: Any) -> str:
    """ConfigEntry.source is an int in confluent-kafka 2.x: its ConfigSource name."""
    try:
        return str(_ka().ConfigSource(int(source)).name)
    except (ValueError, TypeError):
        return str(source)


def _ids(ids: Any) -> str:
    return ",".join(str(i) for i in ids)


def _offsets(admin: Any, name: str, ids: Sequence[int], spec: Any, tp_cls: Any,
             timeout: float) -> dict[int, int]:
    if not ids:
        return {}
    futs = admin.list_offsets({tp_cls(name, p): spec for p in ids}, request_timeout=timeout)
    return {tp.partition: kafka_call(f, f"list offsets of {name}/{tp.partition}", timeout).offset
            for tp, f in futs.items()}


@topic.command("delete", short_help="delete topics")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@brokers_option
@timeout_option
@json_option
def delete(names: tuple[str, ...], brokers: str, timeout: float, as_json: bool) -> None:
    """Delete topics (and all their records)."""
    admin = admin_client(brokers, timeout)
    done, failed = _each(admin.delete_topics(list(names), request_timeout=timeout), "delete",
                        timeout)
    if done or as_json:
        emit({"deleted": done}, as_json=as_json, columns=("TOPIC", "STATUS"),
             rows=[(n, "deleted") for n in done])
    _finish(failed)


@topic.command("alter-config", short_help="set or delete topic configs (incremental)")
@click.argument("name")
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="set a config, repeatable")
@click.option("-d", "--delete", "deletes", multiple=True, metavar="KEY",
              help="remove a config (back to its default), repeatable")
@click.option("--dry-run", is_flag=True, help="validate only; change nothing")
@brokers_option
@timeout_option
@json_option
def alter_config(name: str, sets: tuple[str, ...], deletes: tuple[str, ...], dry_run: bool,
                 brokers: str, timeout: float, as_json: bool) -> None:
    """Set or remove a topic's configs (IncrementalAlterConfigs: the others stay as they are)."""
    ka = _ka()
    AlterConfigOpType, ConfigEntry = ka.AlterConfigOpType, ka.ConfigEntry
    if not sets and not deletes:
        raise CliError("alter-config: nothing to do (give --set KEY=VALUE or --delete KEY)",
                       EXIT_USAGE)
    changes = dict(parse_kv(sets))
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in changes.items()]
    entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                for k in deletes]
    admin = admin_client(brokers, timeout)
    futs = admin.incremental_alter_configs(
        [ka.ConfigResource("topic", name, incremental_configs=entries)], request_timeout=timeout,
        validate_only=dry_run)
    kafka_call(next(iter(futs.values())), f"alter-config {name}", timeout)
    rows = [(k, v, "set") for k, v in changes.items()] + [(k, "-", "deleted") for k in deletes]
    emit({"topic": name, "set": changes, "deleted": list(deletes), "dry_run": dry_run},
         as_json=as_json, columns=("KEY", "VALUE", "CHANGE"), rows=rows)


@topic.command("add-partitions", short_help="grow a topic to N partitions")
@click.argument("name")
@click.option("-n", "--total", type=click.IntRange(min=1), required=True,
              help="the topic's partition count afterwards")
@brokers_option
@timeout_option
@json_option
def add_partitions(name: str, total: int, brokers: str, timeout: float, as_json: bool) -> None:
    """Grow a topic to TOTAL partitions (existing keys may map to other partitions after)."""
    NewPartitions = _ka().NewPartitions
    admin = admin_client(brokers, timeout)
    before = len(topic_metadata(admin, name, brokers, timeout).partitions)
    futs = admin.create_partitions([NewPartitions(name, total)], request_timeout=timeout)
    kafka_call(next(iter(futs.values())), f"add-partitions {name}", timeout)
    emit({"topic": name, "partitions_before": before, "partitions": total}, as_json=as_json,
         text=f"{name}: {before} -> {total} partitions")


@topic.command("trim-prefix", short_help="delete the records before an offset (DeleteRecords)")
@click.argument("name")
@click.option("-o", "--offset", required=True, metavar="OFFSET|@TIMESTAMP_MS|end",
              help="delete the records before OFFSET, before the first record at or after a"
                   " timestamp, or before the high watermark ('end': all of them)")
@click.option("-p", "--partition", "partitions", type=click.IntRange(min=0), multiple=True,
              help="partition to trim, repeatable")
@click.option("--all-partitions", is_flag=True, help="trim every partition of the topic")
@brokers_option
@timeout_option
@json_option
def trim_prefix(name: str, offset: str, partitions: tuple[int, ...], all_partitions: bool,
                brokers: str, timeout: float, as_json: bool) -> None:
    """Delete the records before an offset (DeleteRecords): the log start offset moves there.

    \b
    redshank topic trim-prefix t1 -p 0 -o 1000
    redshank topic trim-prefix t1 --all-partitions -o @1700000000000
    """
    from confluent_kafka import OFFSET_END, TopicPartition

    if bool(partitions) == all_partitions:
        raise CliError("trim-prefix: name the partitions (-p P ...) or give --all-partitions",
                       EXIT_USAGE)
    if not (offset == "end" or offset.isdigit()
            or (offset.startswith("@") and offset[1:].isdigit())):
        raise CliError(f"trim-prefix: offset {offset!r}: expected a number, @TIMESTAMP_MS or"
                       " end", EXIT_USAGE)
    admin = admin_client(brokers, timeout)
    known = topic_metadata(admin, name, brokers, timeout).partitions
    chosen = sorted(known) if all_partitions else sorted(set(partitions))
    missing = [p for p in chosen if p not in known]
    if missing:
        raise CliError(f"trim-prefix: {name} has no partition {missing[0]}", EXIT_NOT_FOUND)
    if offset.startswith("@"):
        # The first offset at or after the time; -1 (none that late) is the end.
        spec = _ka().OffsetSpec.for_timestamp(int(offset[1:]))
        found = _offsets(admin, name, chosen, spec, TopicPartition, timeout)
        targets = {p: o if o >= 0 else OFFSET_END for p, o in found.items()}
    else:
        targets = {p: OFFSET_END if offset == "end" else int(offset) for p in chosen}
    futs = admin.delete_records([TopicPartition(name, p, targets[p]) for p in chosen],
                                request_timeout=timeout)
    rows = sorted((tp.partition, kafka_call(f, f"trim-prefix {name}/{tp.partition}", timeout)
                   .low_watermark) for tp, f in futs.items())
    emit([{"partition": p, "log_start_offset": lw} for p, lw in rows], as_json=as_json,
         columns=("PARTITION", "LOG-START"), rows=rows)
