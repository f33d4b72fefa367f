"""`redshank transaction list|describe|producers` against the session's broker, run in-process
through `cli.main` (exit code, stdout, stderr as a user sees them): a confluent-kafka
transactional producer holds a transaction open on two partitions; `list` shows it Ongoing (and
not under another state filter), `describe` its producer, timeout and partitions, `producers`
each partition's producer with the first offset of its open transaction; after the commit the
transaction completes and no partition has an open one. An unknown id or topic exits 4."""

from __future__ import annotations

import time

import pytest
from broker_proc import BrokerProcess, create_topic
from confluent_kafka import Producer
from test_cli_groups import run, run_json

TOPIC = "cli-txn"
TXN_ID = "cli-txn-id"


@pytest.mark.timeout(90)
def test_transaction_list_describe_and_producers(broker: BrokerProcess,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    b = ("-X", broker.bootstrap)
    create_topic(broker.bootstrap, TOPIC, 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": TXN_ID,
                         "transaction.timeout.ms": 45_000, "log_level": 0})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(TOPIC, f"v{i}".encode(), partition=i % 2)
    assert producer.flush(30) == 0

    listed = {t["transactional_id"]: t for t in run_json(capsys, "transaction", "list", *b)}
    assert listed[TXN_ID]["state"] == "Ongoing", listed
    assert listed[TXN_ID]["coordinator"] == broker.bootstrap
    pid = listed[TXN_ID]["producer_id"]
    others = run_json(capsys, "transaction", "list", "--state", "CompleteAbort", *b)
    assert TXN_ID not in {t["transactional_id"] for t in others}

    [described] = run_json(capsys, "transaction", "describe", TXN_ID, *b)
    assert (described["state"], described["producer_id"], described["timeout_ms"]) == (
        "Ongoing", pid, 45_000)
    assert described["partitions"] == [{"topic": TOPIC, "partition": p} for p in (0, 1)]
    assert described["start_time_ms"] is not None
    code, out, _ = run(capsys, "transaction", "describe", TXN_ID, *b)
    assert code == 0 and "Ongoing" in out and TOPIC in out

    rows = run_json(capsys, "transaction", "producers", TOPIC, *b)
    assert [(r["partition"], r["producer_id"], r["last_sequence"],
             r["current_txn_start_offset"]) for r in rows] == [(0, pid, 2, 0), (1, pid, 1, 0)]
    only = run_json(capsys, "transaction", "producers", TOPIC, "-p", "1", *b)
    assert [r["partition"] for r in only] == [1]

    producer.commit_transaction(30)
    deadline = time.monotonic() + 20
    while True:  # EndTxn answers at PrepareCommit; CompleteCommit follows the markers
        [described] = run_json(capsys, "transaction", "describe", TXN_ID, *b)
        if described["state"] == "CompleteCommit":
            break
        assert described["state"] == "PrepareCommit" and time.monotonic() < deadline, described
        time.sleep(0.05)
    rows = run_json(capsys, "transaction", "producers", TOPIC, *b)
    assert [(r["partition"], r["current_txn_start_offset"]) for r in rows] == [
        (0, None), (1, None)]


def test_unknown_id_and_topic_exit_4(broker: BrokerProcess,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    b = ("-X", broker.bootstrap)
    for args in (("transaction", "describe", "cli-no-such-id"),
                 ("transaction", "producers", "cli-no-such-topic")):
        code, _, err = run(capsys, *args, *b)
        lines = err.strip().splitlines()
        assert code == 4 and len(lines) == 1 and lines[0].startswith("redshank: "), (args, err)
