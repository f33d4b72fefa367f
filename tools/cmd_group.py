"""`redshank group ...`: consumer groups, through confluent-kafka's AdminClient.

    redshank group list                          groups, their state, type and coordinator
    redshank group describe GROUP...             members, assignments, committed offsets, lag
    redshank group delete GROUP...               delete empty groups (and their offsets)
    redshank group seek GROUP --to start|end|OFFSET|@TIMESTAMP_MS [--topics T,...]
    redshank group offset-delete GROUP --topic T [--partitions 0,1]

Lag is what a read_committed consumer can still read (issue 18): the partition's last stable
offset minus the group's committed offset, as librdkafka's consumer_lag for read_committed; a
partition with no committed offset has no lag to show. The last stable offset is ListOffsets
LATEST at isolation level READ_COMMITTED (KIP-98: the first offset of the oldest open
transaction, else the high watermark): the records of an open transaction are past it, not lag
yet. LOG-END stays the log end offset (the high watermark). `seek` commits new offsets for the
group (AlterConsumerGroupOffsets); Kafka only lets that happen to a group with no members, and
its refusal is printed as it comes. `offset-delete` sends OffsetDelete (47) with our own
codec (`tools/kafka_raw.py`): the Python binding has no call for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import click

from redshank.tools.clikit import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
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

__all__ = ["group"]

_STATES = {"UNKNOWN": "Unknown", "PREPARING_REBALANCING": "PreparingRebalance",
           "COMPLETING_REBALANCING": "CompletingRebalance", "STABLE": "Stable",
           "DEAD": "Dead", "EMPTY": "Empty"}


def _state(state: Any) -> str:
    name = getattr(state, "name", str(state))
    return _STATES.get(name, name)


def _node(node: Any) -> dict[str, Any] | None:
    if node is None:
        return None
    return {"id": node.id, "host": node.host, "port": node.port}


def _node_text(node: dict[str, Any] | None) -> str:
    return "-" if node is None else f"{node['id']} ({node['host']}:{node['port']})"


@click.group("group", context_settings={"help_option_names": ["-h", "--help"]},
             no_args_is_help=True)
def group() -> None:
    """Consumer groups: list, describe (members, offsets, lag), delete, seek."""


@group.command("list")
@brokers_option
@timeout_option
@json_option
def list_groups(brokers: str, timeout: float, as_json: bool) -> None:
    """Every consumer group: id, state, protocol type and coordinator."""
    admin = admin_client(brokers, timeout)
    listed = kafka_call(admin.list_consumer_groups(request_timeout=timeout), "list groups",
                        timeout)
    if listed.errors:
        raise CliError(f"list groups: {listed.errors[0]}", EXIT_ERROR)
    ids = sorted(g.group_id for g in listed.valid)
    described = _describe(admin, ids, timeout) if ids else {}
    rows = []
    for g in sorted(listed.valid, key=lambda g: g.group_id):
        d = described.get(g.group_id)
        rows.append({
            "group": g.group_id,
            "state": _state(g.state),
            "protocol_type": "" if g.is_simple_consumer_group else "consumer",
            "coordinator": _node(d.coordinator) if d is not None else None,
        })
    emit(rows, as_json=as_json, columns=("GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"),
         rows=[(r["group"], r["state"], r["protocol_type"] or "(simple)",
                _node_text(r["coordinator"])) for r in rows])


def _describe(admin: Any, groups: Sequence[str], timeout: float) -> dict[str, Any]:
    futures = admin.describe_consumer_groups(list(groups), request_timeout=timeout)
    return {g: kafka_call(f, f"describe group {g}", timeout) for g, f in futures.items()}


def _exists(description: Any) -> bool:
    # DescribeGroups answers an unknown group with state Dead and no members (before KIP-1043's
    # GROUP_ID_NOT_FOUND); Kafka's own tool reads that as "does not exist", and so do we.
    return not (_state(description.state) == "Dead" and not description.members)


def _committed(admin: Any, group_id: str, timeout: float) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    futures = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group_id)], request_timeout=timeout)
    result = kafka_call(futures[group_id], f"committed offsets of group {group_id}", timeout)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or ()
            if tp.error is None and tp.offset >= 0}


def _offsets(admin: Any, tps: Iterable[tuple[str, int]], spec: Any, timeout: float,
             committed: bool = False) -> dict[tuple[str, int], int]:
    """ListOffsets for each partition (`spec`: an OffsetSpec); -1 where Kafka has none.
    `committed`: at isolation level READ_COMMITTED (LATEST is then the last stable offset)."""
    from confluent_kafka import IsolationLevel, TopicPartition

    asked = {TopicPartition(t, p): spec for t, p in tps}
    if not asked:
        return {}
    isolation = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    futures = admin.list_offsets(asked, isolation_level=isolation, request_timeout=timeout)
    return {(tp.topic, tp.partition): kafka_call(f, f"offsets of {tp.topic}/{tp.partition}",
                                                 timeout).offset
            for tp, f in futures.items()}


def describe_group(admin: Any, group_id: str, description: Any, timeout: float
                   ) -> dict[str, Any]:
    """One group as a JSON-able dict: members, and per partition committed offset, log end
    offset, last stable offset and lag against it (None where nothing is committed)."""
    OffsetSpec = kafka_admin_module().OffsetSpec
    members = []
    owner: dict[tuple[str, int], Any] = {}
    for m in description.members:
        assigned = sorted((tp.topic, tp.partition) for tp in (
            m.assignment.topic_partitions if m.assignment is not None else ()))
        for tp in assigned:
            owner[tp] = m
        members.append({"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                        "instance_id": m.group_instance_id,
                        "assignments": [{"topic": t, "partition": p} for t, p in assigned]})
    committed = _committed(admin, group_id, timeout)
    tps = sorted(set(committed) | set(owner))
    ends = _offsets(admin, tps, OffsetSpec.latest(), timeout)
    stable = _offsets(admin, tps, OffsetSpec.latest(), timeout, committed=True)
    partitions = []
    total = 0
    for tp in tps:
        offset, end, lso = committed.get(tp), _known(ends.get(tp)), _known(stable.get(tp))
        lag = None if offset is None or lso is None else max(0, lso - offset)
        total += lag or 0
        m = owner.get(tp)
        partitions.append({
            "topic": tp[0], "partition": tp[1], "committed": offset,
            "log_end": end, "last_stable": lso, "lag": lag,
            "member_id": m.member_id if m is not None else None,
            "client_id": m.client_id if m is not None else None,
            "host": m.host if m is not None else None})
    return {"group": group_id, "state": _state(description.state),
            "protocol_type": "" if description.is_simple_consumer_group else "consumer",
            "protocol": description.partition_assignor,
            "coordinator": _node(description.coordinator), "members": members,
            "partitions": partitions, "total_lag": total}


def _known(offset: int | None) -> int | None:
    return offset if offset is not None and offset >= 0 else None


def _assignments(assigned: Sequence[dict[str, Any]]) -> str:
    """`orders:0,1,2 audit:0`: partitions by topic, the shortest text that says them all."""
    by_topic: dict[str, list[int]] = {}
    for a in assigned:
        by_topic.setdefault(a["topic"], []).append(a["partition"])
    return " ".join(f"{t}:{','.join(str(p) for p in sorted(ps))}"
                    for t, ps in sorted(by_topic.items())) or "-"


def _print_group(g: dict[str, Any]) -> None:
    head = [("GROUP", g["group"]), ("COORDINATOR", _node_text(g["coordinator"])),
            ("STATE", g["state"]), ("PROTOCOL", g["protocol"] or "-"),
            ("MEMBERS", len(g["members"])), ("TOTAL-LAG", g["total_lag"])]
    click.echo("\n".join(f"{k:<12} {v}" for k, v in head))
    if g["members"]:
        click.echo()
        print_table(("MEMBER-ID", "CLIENT-ID", "HOST", "INSTANCE-ID", "ASSIGNMENTS"), [
            (m["member_id"], m["client_id"], m["host"] or "-", m["instance_id"],
             _assignments(m["assignments"]))
            for m in g["members"]])
    if g["partitions"]:
        click.echo()
        print_table(("TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAST-STABLE", "LAG",
                     "CLIENT-ID"), [
            (p["topic"], p["partition"], p["committed"], p["log_end"], p["last_stable"],
             p["lag"], p["client_id"]) for p in g["partitions"]])


@group.command("describe")
@click.argument("groups", nargs=-1, required=True)
@brokers_option
@timeout_option
@json_option
def describe(groups: tuple[str, ...], brokers: str, timeout: float, as_json: bool) -> None:
    """Members, assignments, committed offsets and lag of each GROUP (JSON: a list)."""
    admin = admin_client(brokers, timeout)
    described = _describe(admin, groups, timeout)
    missing = [g for g in groups if not _exists(described[g])]
    if missing:
        raise CliError(f"group {', '.join(missing)}: no such group", EXIT_NOT_FOUND)
    out = [describe_group(admin, g, described[g], timeout) for g in groups]
    if as_json:
        emit(out, as_json=True)
        return
    for i, g in enumerate(out):
        if i:
            click.echo()
        _print_group(g)


@group.command("delete")
@click.argument("groups", nargs=-1, required=True)
@brokers_option
@timeout_option
@json_option
def delete(groups: tuple[str, ...], brokers: str, timeout: float, as_json: bool) -> None:
    """Delete each GROUP and its committed offsets (Kafka refuses a group with members)."""
    admin = admin_client(brokers, timeout)
    futures = admin.delete_consumer_groups(list(groups), request_timeout=timeout)
    done: list[str] = []
    failed: list[CliError] = []
    for g in groups:
        try:
            kafka_call(futures[g], f"delete group {g}", timeout)
            done.append(g)
        except CliError as exc:
            failed.append(exc)
    if done or as_json:
        emit({"deleted": done, "failed": [e.message for e in failed]}, as_json=as_json,
             text="\n".join(f"deleted group {g}" for g in done))
    if failed:
        raise CliError("; ".join(e.message for e in failed), max(e.code for e in failed))


def _target(to: str) -> tuple[str, int]:
    """--to as (kind, value): ("start"|"end", 0), ("offset", n) or ("timestamp", ms)."""
    if to in ("start", "end"):
        return to, 0
    try:
        if to.startswith("@"):
            return "timestamp", int(to[1:])
        value = int(to)
    except ValueError:
        raise click.BadParameter(f"{to!r}: expected start, end, an offset or @TIMESTAMP_MS",
                                 param_hint="--to") from None
    if value < 0:
        raise click.BadParameter(f"{to!r}: an offset is at least 0", param_hint="--to")
    return "offset", value


def _partitions_of(admin: Any, topics: Sequence[str], timeout: float
                   ) -> list[tuple[str, int]]:
    metadata = admin.list_topics(timeout=timeout)
    out: list[tuple[str, int]] = []
    for t in topics:
        info = metadata.topics.get(t)
        if info is None or info.error is not None:
            raise CliError(f"topic {t}: no such topic", EXIT_NOT_FOUND)
        out.extend((t, p) for p in sorted(info.partitions))
    return out


@group.command("seek")
@click.argument("group_id", metavar="GROUP")
@click.option("--to", "to", required=True, metavar="start|end|OFFSET|@TIMESTAMP_MS",
              help="where to move the group's committed offsets: the log start, the log end,"
                   " an offset, or the first record at or after a timestamp (ms since epoch)")
@click.option("--topics", default=None, metavar="T,...",
              help="topics to move (all their partitions; default: every topic the group has"
                   " committed offsets for)")
@brokers_option
@timeout_option
@json_option
def seek(group_id: str, to: str, topics: str | None, brokers: str, timeout: float,
         as_json: bool) -> None:
    """Move GROUP's committed offsets (the group must have no members: stop its consumers)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    OffsetSpec = kafka_admin_module().OffsetSpec
    kind, value = _target(to)
    admin = admin_client(brokers, timeout)
    committed = _committed(admin, group_id, timeout)
    names = ([t.strip() for t in topics.split(",") if t.strip()] if topics
             else sorted({t for t, _ in committed}))
    if not names:
        raise CliError(f"group {group_id} has no committed offsets: name the topics to move"
                       " with --topics", EXIT_NOT_FOUND)
    tps = _partitions_of(admin, names, timeout)
    if kind == "offset":
        targets = {tp: value for tp in tps}
    else:
        spec = {"start": OffsetSpec.earliest(), "end": OffsetSpec.latest(),
                "timestamp": OffsetSpec.for_timestamp(value)}[kind]
        targets = _offsets(admin, tps, spec, timeout)
        if kind == "timestamp" and any(o < 0 for o in targets.values()):
            # No record at or after the timestamp: the log end, as Kafka's --to-datetime does.
            ends = _offsets(admin, [tp for tp, o in targets.items() if o < 0],
                            OffsetSpec.latest(), timeout)
            targets.update(ends)
    request = ConsumerGroupTopicPartitions(group_id, [
        TopicPartition(t, p, targets[(t, p)]) for t, p in tps])
    futures = admin.alter_consumer_group_offsets([request], request_timeout=timeout)
    result = kafka_call(futures[group_id], f"seek group {group_id}", timeout)
    failed = [tp for tp in result.topic_partitions or () if tp.error is not None]
    if failed:
        tp = failed[0]
        hint = (" (the group has members: stop its consumers first)"
                if tp.error.name() == "UNKNOWN_MEMBER_ID" else "")
        raise CliError(f"seek group {group_id}: {tp.topic}/{tp.partition}: {tp.error.name()}: "
                       f"{tp.error.str()}{hint}", EXIT_ERROR)
    rows = [{"topic": t, "partition": p, "before": committed.get((t, p)),
             "after": targets[(t, p)]} for t, p in tps]
    emit(rows, as_json=as_json, columns=("TOPIC", "PARTITION", "BEFORE", "AFTER"),
         rows=[(r["topic"], r["partition"], r["before"], r["after"]) for r in rows])


@group.command("offset-delete")
@click.argument("group_id", metavar="GROUP")
@click.option("--topic", required=True, help="the topic whose committed offsets to delete")
@click.option("--partitions", default=None, metavar="P,...",
              help="only these partitions (default: all of the topic's)")
@brokers_option
@timeout_option
@json_option
def offset_delete(group_id: str, topic: str, partitions: str | None, brokers: str,
                  timeout: float, as_json: bool) -> None:
    """Delete GROUP's committed offsets of a topic (OffsetDelete; Kafka refuses partitions the
    group is consuming)."""
    from redshank.protocol.messages import find_coordinator as fc
    from redshank.protocol.messages import offset_delete as od

    if partitions:
        try:
            parts = sorted({int(p) for p in partitions.split(",") if p.strip()})
        except ValueError:
            raise click.BadParameter(f"{partitions!r}: expected P,...",
                                     param_hint="--partitions") from None
    else:
        admin = admin_client(brokers, timeout)
        parts = [p for _, p in _partitions_of(admin, [topic], timeout)]
    with raw_connection(brokers, timeout) as conn:
        found = conn.call(fc.FindCoordinatorRequest(key=group_id, key_type=0), 3,
                          fc.FindCoordinatorResponse)
    if found.error_code:
        raise CliError(f"offset-delete {group_id}: {error_name(found.error_code)}: "
                       f"{found.error_message or ''}".rstrip(": "), EXIT_ERROR)
    with raw_connection(f"{found.host}:{found.port}", timeout) as conn:
        answer = conn.call(od.OffsetDeleteRequest(group_id=group_id, topics=(
            od.OffsetDeleteRequestTopic(name=topic, partitions=tuple(
                od.OffsetDeleteRequestPartition(partition_index=p) for p in parts)),)),
            0, od.OffsetDeleteResponse)
    if answer.error_code:
        code = EXIT_NOT_FOUND if error_name(answer.error_code) == "GROUP_ID_NOT_FOUND" \
            else EXIT_ERROR
        raise CliError(f"offset-delete {group_id}: {error_name(answer.error_code)}", code)
    rows = [{"topic": t.name, "partition": p.partition_index,
             "error": error_name(p.error_code) if p.error_code else None}
            for t in answer.topics for p in t.partitions]
    emit(rows, as_json=as_json, columns=("TOPIC", "PARTITION", "RESULT"),
         rows=[(r["topic"], r["partition"], r["error"] or "deleted") for r in rows])
    bad = [r for r in rows if r["error"]]
    if bad:
        raise CliError(f"offset-delete {group_id}: {bad[0]['topic']}/{bad[0]['partition']}: "
                       f"{bad[0]['error']}", EXIT_ERROR)
