"""The lab and the checker together against a real single-node broker, until the multi-node one
exists: an idempotent acks=all producer keeps producing while its link to the broker is cut
(through a FaultProxy, and across network namespaces), the link heals, and the History of every
attempt, ack and final read checks clean."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from broker_proc import BrokerProcess, create_topic, free_port
from confluent_kafka import KafkaError, Message, Producer
from test_confluent_kafka import consume_assigned

from lab.fault_proxy import FaultProxy
from lab.history import History
from lab.netns import NetnsLab, require_netns
from redshank.tools.bench._broker import read_line

PARTITIONS = 2
TOPIC = "lab"
CUT_SECONDS = 1.0


def _producer(bootstrap: str, history: History) -> tuple[Producer, Callable[[int], None]]:
    """An idempotent acks=all producer recording into `history`; returns it and `send(n)`."""
    producer = Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
        "linger.ms": 5, "message.timeout.ms": 60000, "retry.backoff.ms": 50,
        "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 300,
    })
    seq = 0

    def report(err: KafkaError | None, msg: Message) -> None:
        value = msg.value()
        assert value is not None
        rid = value.decode()
        if err is None:
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            history.acked(rid, partition, offset)
        else:
            history.unknown(rid)  # a timeout or lost connection: may have been written

    def send(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            rid = f"r{seq:06d}"
            history.attempt(rid, producer="p1")
            producer.produce(TOPIC, value=rid.encode(), partition=seq % PARTITIONS,
                             on_delivery=report)
            seq += 1
            producer.poll(0)
        producer.poll(0.05)

    return producer, send


def _final_read(bootstrap: str, history: History, acked: int) -> None:
    got = consume_assigned(bootstrap, TOPIC, PARTITIONS, acked, timeout=30)
    for p in range(PARTITIONS):
        history.final(p, [(o, v.decode()) for o, _k, v in got.get(p, []) if v is not None])


def _run_with_a_cut(cut: Callable[[], None], heal: Callable[[], None],
                    producer: Producer, send: Callable[[int], None]) -> None:
    send(300)
    assert producer.flush(30) == 0
    cut()
    end = time.monotonic() + CUT_SECONDS
    while time.monotonic() < end:
        send(20)  # the producer keeps sending into the cut
    heal()
    send(300)
    assert producer.flush(60) == 0, "records never acknowledged after the heal"


def test_idempotent_producer_across_a_proxy_cut(tmp_path: Path) -> None:
    port = free_port()
    with FaultProxy(("127.0.0.1", port)) as proxy:
        node = BrokerProcess(tmp_path / "data", cores=1, port=port, extra_args=(
            "--advertise-kafka-addr", f"127.0.0.1:{proxy.port}"))
        node.start()
        try:
            bootstrap = f"127.0.0.1:{proxy.port}"  # every client byte crosses the proxy
            create_topic(bootstrap, TOPIC, PARTITIONS)
            history = History()
            producer, send = _producer(bootstrap, history)
            held: list[int] = []

            def cut() -> None:
                proxy.cut()

            def heal() -> None:
                held.append(proxy.stats().held_a_to_b)
                proxy.heal()

            _run_with_a_cut(cut, heal, producer, send)
            del producer, send
            assert held[0] > 0, "nothing was held: the producer did not send into the cut"
            report = history.check()
            _final_read(bootstrap, history, report.counts["acked"])
            history.check().assert_ok()
        finally:
            node.stop()


def test_idempotent_producer_across_a_namespace_cut(tmp_path: Path) -> None:
    require_netns()
    with NetnsLab(2) as lab:
        log = open(tmp_path / "broker.log", "wb")  # noqa: SIM115 - closed below
        try:
            proc = lab.run(1, [sys.executable, "-m", "redshank.tools.cli", "start",
                               "--kafka-addr", f"{lab.addr(1)}:9092", "--data-dir",
                               str(tmp_path / "data"), "--cores", "1", "--no-pin",
                               "--admin-addr", "none"],
                           stdout=subprocess.PIPE, stderr=log, env=os.environ)
        finally:
            log.close()
        assert proc.stdout is not None
        line = read_line(proc.stdout, 45)
        assert line.startswith("redshank ready "), (
            f"broker not ready: {line!r}\n{(tmp_path / 'broker.log').read_text()[-2000:]}")
        bootstrap = f"{lab.addr(1)}:9092"
        history = History()
        with lab.entered(2):  # the clients' threads live in node 2
            create_topic(bootstrap, TOPIC, PARTITIONS)
            producer, send = _producer(bootstrap, history)
        drops: list[int] = []

        def heal() -> None:
            drops.append(lab.dropped(2))
            lab.heal()

        _run_with_a_cut(lambda: lab.cut(1, 2), heal, producer, send)
        del producer, send  # librdkafka's threads end before the lab does
        assert drops[0] > 0, "node 2 dropped nothing: the producer did not send into the cut"
        acked = history.check().counts["acked"]
        with lab.entered(2):
            _final_read(bootstrap, history, acked)
        history.check().assert_ok()
