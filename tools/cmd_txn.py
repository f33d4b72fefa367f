"""`redshank transaction ...`: transactions (KIP-98) as their coordinators and partitions see them.

    redshank transaction list [--state S]...     every transactional id, its producer id, state
    redshank transaction describe ID...          state, producer id/epoch, timeout, partitions
    redshank transaction producers TOPIC [-p P]  each partition's active producers (idempotent
                                                 and transactional) and open transactions' start

confluent-kafka's Python AdminClient has no call for ListTransactions (66), DescribeTransactions
(65) or DescribeProducers (61), so these go through our codec (`tools/kafka_raw.py`), as Kafka's
own `kafka-transactions.sh` does through its admin client: ListTransactions to every broker (each
answers for the `__transaction_state` partitions it leads), DescribeTransactions to the id's
coordinator (FindCoordinator, key type TRANSACTION), DescribeProducers to each partition's leader.
`producers` lives here rather than under `topic`: it is the transactional view of a partition
(its open transactions hold back the last stable offset). Must not know the broker's internals.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click

from redshank.tools.clikit import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    CliError,
    admin_client,
    brokers_option,
    emit,
    error_name,
    json_option,
    print_table,
    raw_connection,
    timeout_option,
    topic_metadata,
)

__all__ = ["transaction"]

# Versions Kafka 3.x and Redshank both serve.
_FIND_COORDINATOR_V = 3
_LIST_V = 1
_DESCRIBE_V = 0
_PRODUCERS_V = 0
_TRANSACTION_KEY_TYPE = 1  # FindCoordinator key_type: 0 group, 1 transaction
# Errors that say "ask again shortly" (the coordinator is moving or loading its log).
_RETRIABLE = frozenset({"NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS",
                        "COORDINATOR_NOT_AVAILABLE"})
_RETRY_PAUSE_S = 0.2


@click.group("transaction", context_settings={"help_option_names": ["-h", "--help"]},
             no_args_is_help=True)
def transaction() -> None:
    """Transactions: list, describe (state, producer, partitions), producers of a topic."""


def _ask(addresses: str, request: Any, version: int, response_type: Any, what: str,
         timeout: float) -> Any:
    """One request to the first of `addresses` that accepts a connection, its response; an
    I/O failure (no answer, or the connection closed: a broker that does not serve the API
    closes it) as one CliError line."""
    with raw_connection(addresses, timeout) as conn:
        try:
            return conn.call(request, version, response_type)
        except (OSError, ValueError) as exc:
            raise CliError(f"{what}: {exc or type(exc).__name__}",
                           EXIT_UNREACHABLE) from exc


def _brokers_of(brokers: str, timeout: float) -> list[str]:
    """host:port of every broker in the cluster's metadata."""
    metadata = admin_client(brokers, timeout).list_topics(timeout=timeout)
    return [f"{b.host}:{b.port}" for _, b in sorted(metadata.brokers.items())]


@transaction.command("list")
@click.option("--state", "states", multiple=True, metavar="STATE",
              help="only transactions in this state (Empty, Ongoing, PrepareCommit, "
                   "PrepareAbort, CompleteCommit, CompleteAbort, ...); repeatable")
@brokers_option
@timeout_option
@json_option
def list_transactions(states: tuple[str, ...], brokers: str, timeout: float,
                      as_json: bool) -> None:
    """Every transactional id the coordinators know: producer id, state, coordinator."""
    from redshank.protocol.messages import list_transactions as lt

    rows: list[dict[str, Any]] = []
    for address in _brokers_of(brokers, timeout):
        answer = _ask(address, lt.ListTransactionsRequest(state_filters=states), _LIST_V,
                      lt.ListTransactionsResponse, "list transactions", timeout)
        if answer.error_code:
            raise CliError(f"list transactions at {address}: {error_name(answer.error_code)}",
                           EXIT_ERROR)
        rows.extend({"transactional_id": t.transactional_id, "producer_id": t.producer_id,
                     "state": t.transaction_state, "coordinator": address}
                    for t in answer.transaction_states)
    rows.sort(key=lambda r: r["transactional_id"])
    emit(rows, as_json=as_json, columns=("TRANSACTIONAL-ID", "PRODUCER-ID", "STATE",
                                         "COORDINATOR"),
         rows=[(r["transactional_id"], r["producer_id"], r["state"], r["coordinator"])
               for r in rows])


def _coordinator(brokers: str, txn_id: str, timeout: float) -> str:
    """host:port of `txn_id`'s transaction coordinator (FindCoordinator, asked again while it
    is moving or loading, within `timeout`)."""
    from redshank.protocol.messages import find_coordinator as fc

    deadline = time.monotonic() + timeout
    while True:
        found = _ask(brokers, fc.FindCoordinatorRequest(key=txn_id,
                                                        key_type=_TRANSACTION_KEY_TYPE),
                     _FIND_COORDINATOR_V, fc.FindCoordinatorResponse,
                     f"coordinator of transaction {txn_id}", timeout)
        if not found.error_code:
            return f"{found.host}:{found.port}"
        name = error_name(found.error_code)
        if name not in _RETRIABLE or time.monotonic() >= deadline:
            raise CliError(f"coordinator of transaction {txn_id}: {name}", EXIT_ERROR)
        time.sleep(_RETRY_PAUSE_S)


def _describe_one(brokers: str, txn_id: str, timeout: float) -> dict[str, Any]:
    from redshank.protocol.messages import describe_transactions as dt

    deadline = time.monotonic() + timeout
    while True:
        address = _coordinator(brokers, txn_id, timeout)
        answer = _ask(address, dt.DescribeTransactionsRequest(transactional_ids=(txn_id,)),
                      _DESCRIBE_V, dt.DescribeTransactionsResponse,
                      f"describe transaction {txn_id}", timeout)
        [state] = answer.transaction_states
        name = error_name(state.error_code) if state.error_code else None
        if name is None:
            break
        if name == "TRANSACTIONAL_ID_NOT_FOUND":
            raise CliError(f"transaction {txn_id}: no such transactional id", EXIT_NOT_FOUND)
        if name not in _RETRIABLE or time.monotonic() >= deadline:
            raise CliError(f"describe transaction {txn_id}: {name}", EXIT_ERROR)
        time.sleep(_RETRY_PAUSE_S)
    started = state.transaction_start_time_ms
    return {"transactional_id": txn_id, "coordinator": address,
            "state": state.transaction_state, "producer_id": state.producer_id,
            "producer_epoch": state.producer_epoch,
            "timeout_ms": state.transaction_timeout_ms,
            "start_time_ms": started if started >= 0 else None,
            "partitions": sorted(({"topic": t.topic, "partition": p}
                                  for t in state.topics for p in t.partitions),
                                 key=lambda x: (x["topic"], x["partition"]))}


def _print_transaction(t: dict[str, Any]) -> None:
    started = t["start_time_ms"]
    age = "-" if started is None else f"{started} ({time.time() - started / 1000:.1f} s ago)"
    head = [("TRANSACTIONAL-ID", t["transactional_id"]), ("COORDINATOR", t["coordinator"]),
            ("STATE", t["state"]), ("PRODUCER-ID", t["producer_id"]),
            ("PRODUCER-EPOCH", t["producer_epoch"]), ("TIMEOUT-MS", t["timeout_ms"]),
            ("STARTED-MS", age), ("PARTITIONS", len(t["partitions"]))]
    click.echo("\n".join(f"{k:<16} {v}" for k, v in head))
    if t["partitions"]:
        click.echo()
        print_table(("TOPIC", "PARTITION"), [(p["topic"], p["partition"])
                                             for p in t["partitions"]])


@transaction.command("describe")
@click.argument("txn_ids", nargs=-1, required=True, metavar="ID...")
@brokers_option
@timeout_option
@json_option
def describe(txn_ids: tuple[str, ...], brokers: str, timeout: float, as_json: bool) -> None:
    """State, producer id and epoch, timeout and partitions of each transactional ID (JSON: a
    list)."""
    out = [_describe_one(brokers, t, timeout) for t in txn_ids]
    if as_json:
        emit(out, as_json=True)
        return
    for i, t in enumerate(out):
        if i:
            click.echo()
        _print_transaction(t)


def _leaders(brokers: str, topic: str, partitions: Sequence[int], timeout: float
             ) -> dict[str, list[int]]:
    """host:port of each leader -> the partitions of `topic` it leads (of `partitions`, or all
    when empty); CliError(EXIT_NOT_FOUND) for a missing topic or partition."""
    admin = admin_client(brokers, timeout)
    tmd = topic_metadata(admin, topic, brokers, timeout)
    metadata = admin.list_topics(timeout=timeout)
    wanted = sorted(partitions) if partitions else sorted(tmd.partitions)
    missing = [p for p in wanted if p not in tmd.partitions]
    if missing:
        raise CliError(f"topic {topic!r} has no partition {missing[0]}", EXIT_NOT_FOUND)
    out: dict[str, list[int]] = {}
    for p in wanted:
        leader = metadata.brokers.get(tmd.partitions[p].leader)
        if leader is None:
            raise CliError(f"{topic}/{p} has no leader", EXIT_ERROR)
        out.setdefault(f"{leader.host}:{leader.port}", []).append(p)
    return out


@transaction.command("producers")
@click.argument("topic")
@click.option("--partition", "-p", "partitions", type=click.IntRange(min=0), multiple=True,
              metavar="P", help="only this partition (repeatable; default: all)")
@brokers_option
@timeout_option
@json_option
def producers(topic: str, partitions: tuple[int, ...], brokers: str, timeout: float,
              as_json: bool) -> None:
    """Active producers of each partition of TOPIC (DescribeProducers): producer id and epoch,
    last sequence and timestamp, and the first offset of its open transaction, if any."""
    from redshank.protocol.messages import describe_producers as dp

    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for address, parts in sorted(_leaders(brokers, topic, partitions, timeout).items()):
        answer = _ask(address, dp.DescribeProducersRequest(topics=(
            dp.TopicRequest(name=topic, partition_indexes=tuple(parts)),)),
            _PRODUCERS_V, dp.DescribeProducersResponse, "describe producers", timeout)
        for t in answer.topics:
            for p in t.partitions:
                if p.error_code:
                    failed.append(f"{topic}/{p.partition_index}: {error_name(p.error_code)}")
                    continue
                rows.extend({
                    "topic": topic, "partition": p.partition_index,
                    "producer_id": s.producer_id, "producer_epoch": s.producer_epoch,
                    "last_sequence": s.last_sequence, "last_timestamp": s.last_timestamp,
                    "coordinator_epoch": s.coordinator_epoch,
                    "current_txn_start_offset": (s.current_txn_start_offset
                                                 if s.current_txn_start_offset >= 0 else None),
                } for s in p.active_producers)
    rows.sort(key=lambda r: (r["partition"], r["producer_id"]))
    emit(rows, as_json=as_json,
         columns=("PARTITION", "PRODUCER-ID", "EPOCH", "LAST-SEQUENCE", "LAST-TIMESTAMP",
                  "COORDINATOR-EPOCH", "TXN-START-OFFSET"),
         rows=[(r["partition"], r["producer_id"], r["producer_epoch"], r["last_sequence"],
                r["last_timestamp"], r["coordinator_epoch"], r["current_txn_start_offset"])
               for r in rows])
    if failed:
        raise CliError(f"describe producers: {failed[0]}", EXIT_ERROR)
