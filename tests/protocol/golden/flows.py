"""Scripted client flows for the golden-frame capture (run by capture.py, one flow per process).

Each flow drives one real Kafka client (confluent-kafka, kafka-python or aiokafka) through one
scenario against a bootstrap address and prints one JSON line per step: {"step", "ok", "detail"}.
Steps that a peer broker refuses are reported, never raised, so the capture keeps whatever frames
the client did send. Not a test module: it needs a running broker and the network.

Usage (normally via capture.py): python3 flows.py CLIENT FLOW BOOTSTRAP TOPIC
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

RECORDS = 3  # a few small records keep the vectors at a few KiB each
GROUP_TIMEOUT_S = 30.0
# A group member stays this long after consuming so that heartbeats appear in the capture.
HEARTBEAT_S = 3.5

# One compressed produce flow per codec, spread over the clients so all four codecs appear.
CODECS = {"confluent_kafka": ("zstd", "gzip"), "kafka_python": ("lz4",), "aiokafka": ("snappy",)}
FLOWS = (
    "admin_create",
    "produce_acks0",
    "produce_acks1",
    "produce_acks_all",
    "produce_idempotent",
    "produce_compressed",  # expanded per codec: produce_zstd, produce_gzip, ...
    "consume_assign",
    "consume_group",
    "admin",
)


def flows_for(client: str) -> list[str]:
    out: list[str] = []
    for flow in FLOWS:
        if flow == "produce_compressed":
            out.extend(f"produce_{codec}" for codec in CODECS[client])
        else:
            out.append(flow)
    return out


def report(step: str, ok: bool, detail: Any = None) -> None:
    print(json.dumps({"step": step, "ok": ok, "detail": repr(detail)[:300]}), flush=True)


def step(name: str, fn: Callable[[], Any]) -> bool:
    try:
        result = fn()
    except Exception as exc:  # a refused step is data, not a crash: report and go on
        report(name, False, exc)
        return False
    report(name, True, result)
    return True


async def astep(name: str, fn: Callable[[], Awaitable[Any]]) -> bool:
    try:
        result = await asyncio.wait_for(fn(), 20)
    except Exception as exc:
        report(name, False, exc)
        return False
    report(name, True, result)
    return True


def produce_settings(flow: str) -> tuple[str, bool, str | None]:
    """(acks, idempotent, compression) for a produce flow; acks as the string 0/1/all."""
    if flow == "produce_acks0":
        return "0", False, None
    if flow == "produce_acks1":
        return "1", False, None
    if flow in ("produce_acks_all", "produce_idempotent"):
        return "all", flow == "produce_idempotent", None
    return "1", False, flow.removeprefix("produce_")


def record(i: int, flow: str) -> tuple[bytes, bytes]:
    return f"k{i}".encode(), f"{flow} record {i}".encode()


# ---------------------------------------------------------------- confluent-kafka (librdkafka)


def ck_flow(flow: str, bootstrap: str, topic: str) -> None:
    import confluent_kafka as ck
    from confluent_kafka.admin import (
        AdminClient,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )

    base = {"bootstrap.servers": bootstrap, "client.id": "golden-ck"}
    group = f"{topic}-group"
    adm_topic = f"{topic}-adm"
    if flow == "admin_create":
        admin = AdminClient(base)
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1),
             NewTopic(adm_topic, num_partitions=1, replication_factor=1)],
            operation_timeout=10,
        )
        for name, fut in futures.items():
            step(f"create_topics {name}", lambda fut=fut: fut.result(15))
        step("list_topics", lambda: sorted(admin.list_topics(timeout=10).topics))
        return
    if flow.startswith("produce_"):
        acks, idempotent, codec = produce_settings(flow)
        conf = dict(base, acks=acks, **{"enable.idempotence": idempotent, "linger.ms": 20})
        if codec:
            conf["compression.type"] = codec
        producer = ck.Producer(conf)
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for i in range(RECORDS):
            key, value = record(i, flow)
            producer.produce(topic, value, key, headers=[("h", b"v")], on_delivery=on_delivery)
        left = producer.flush(15)
        report("produce", left == 0 and not errors, {"unflushed": left, "errors": errors})
        return
    if flow == "consume_assign":
        consumer = ck.Consumer(dict(base, **{"group.id": group + "-assign",
                                             "enable.auto.commit": False}))
        consumer.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
        got = ck_poll(consumer)
        report("fetch", got >= RECORDS, got)
        ts = int(time.time() * 1000) - 3_600_000
        step("offsets_for_times",
             lambda: consumer.offsets_for_times([ck.TopicPartition(topic, 0, ts)], 10))
        step("watermarks", lambda: consumer.get_watermark_offsets(
            ck.TopicPartition(topic, 0), timeout=10, cached=False))
        consumer.close()
        return
    if flow == "consume_group":
        consumer = ck.Consumer(dict(base, **{"group.id": group, "auto.offset.reset": "earliest",
                                             "enable.auto.commit": False,
                                             "session.timeout.ms": 10000,
                                             "heartbeat.interval.ms": 1000}))
        consumer.subscribe([topic])
        got = ck_poll(consumer)
        report("group fetch", got >= RECORDS, got)
        deadline = time.monotonic() + HEARTBEAT_S
        while time.monotonic() < deadline:
            consumer.poll(0.2)
        step("commit", lambda: consumer.commit(asynchronous=False))
        step("committed", lambda: consumer.committed([ck.TopicPartition(topic, 0)], 10))
        consumer.close()
        report("close (leave group)", True)
        return
    if flow == "admin":
        admin = AdminClient(base)

        def wait(name: str, futures: Any) -> None:
            if isinstance(futures, dict):
                for key, fut in futures.items():
                    step(f"{name} {key}", lambda fut=fut: fut.result(15))
            else:
                step(name, lambda: futures.result(15))

        wait("describe_configs",
             admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]))
        wait("create_partitions", admin.create_partitions([NewPartitions(adm_topic, 2)]))
        wait("list_consumer_groups", admin.list_consumer_groups(request_timeout=10))
        wait("describe_consumer_groups", admin.describe_consumer_groups([group]))
        wait("list_consumer_group_offsets", admin.list_consumer_group_offsets(
            [ck.ConsumerGroupTopicPartitions(group)]))
        wait("delete_records", admin.delete_records([ck.TopicPartition(topic, 0, 1)]))
        wait("describe_cluster", admin.describe_cluster(request_timeout=10))
        step("list_topics", lambda: sorted(admin.list_topics(timeout=10).topics))
        wait("delete_topics", admin.delete_topics([adm_topic], operation_timeout=10))
        return
    raise SystemExit(f"unknown flow {flow}")


def ck_poll(consumer: Any) -> int:
    got = 0
    deadline = time.monotonic() + GROUP_TIMEOUT_S
    while got < RECORDS and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got += 1
    return got


# ---------------------------------------------------------------- kafka-python


def kp_flow(flow: str, bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType

    base: dict[str, Any] = {"bootstrap_servers": bootstrap, "client_id": "golden-kp"}
    group = f"{topic}-group"
    adm_topic = f"{topic}-adm"
    tp = TopicPartition(topic, 0)
    if flow == "admin_create":
        admin = KafkaAdminClient(**base)
        step("create_topics", lambda: admin.create_topics(
            {topic: {"num_partitions": 1, "replication_factor": 1},
             adm_topic: {"num_partitions": 1, "replication_factor": 1}}))
        step("list_topics", admin.list_topics)
        admin.close()
        return
    if flow.startswith("produce_"):
        acks, idempotent, codec = produce_settings(flow)
        producer = KafkaProducer(**base, acks=acks if acks == "all" else int(acks),
                                 enable_idempotence=idempotent, compression_type=codec,
                                 linger_ms=20)
        futures = [producer.send(topic, key=k, value=v, headers=[("h", b"v")])
                   for k, v in (record(i, flow) for i in range(RECORDS))]
        producer.flush(15)
        for i, fut in enumerate(futures):
            step(f"send {i}", lambda fut=fut: fut.get(10))
        producer.close(5)
        return
    if flow == "consume_assign":
        consumer = KafkaConsumer(**base, enable_auto_commit=False, auto_offset_reset="earliest")
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = kp_poll(consumer)
        report("fetch", got >= RECORDS, got)
        ts = int(time.time() * 1000) - 3_600_000
        step("offsets_for_times", lambda: consumer.offsets_for_times({tp: ts}))
        step("beginning_offsets", lambda: consumer.beginning_offsets([tp]))
        step("end_offsets", lambda: consumer.end_offsets([tp]))
        consumer.close()
        return
    if flow == "consume_group":
        consumer = KafkaConsumer(topic, **base, group_id=group, auto_offset_reset="earliest",
                                 enable_auto_commit=False, session_timeout_ms=10000,
                                 heartbeat_interval_ms=1000)
        got = kp_poll(consumer)
        report("group fetch", got >= RECORDS, got)
        deadline = time.monotonic() + HEARTBEAT_S
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        step("commit", consumer.commit)
        step("committed", lambda: consumer.committed(tp))
        consumer.close()
        report("close (leave group)", True)
        return
    if flow == "admin":
        admin = KafkaAdminClient(**base)
        step("describe_configs", lambda: admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]))
        step("create_partitions", lambda: admin.create_partitions({adm_topic: 2}))
        step("list_groups", admin.list_groups)
        step("describe_groups", lambda: admin.describe_groups([group]))
        step("list_group_offsets", lambda: admin.list_group_offsets({group: None}))
        step("delete_records", lambda: admin.delete_records({tp: 1}))
        step("describe_cluster", admin.describe_cluster)
        step("describe_topics", lambda: admin.describe_topics([topic]))
        step("delete_topics", lambda: admin.delete_topics([adm_topic]))
        admin.close()
        return
    raise SystemExit(f"unknown flow {flow}")


def kp_poll(consumer: Any) -> int:
    got = 0
    deadline = time.monotonic() + GROUP_TIMEOUT_S
    while got < RECORDS and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += len(records)
    return got


# ---------------------------------------------------------------- aiokafka


async def aio_flow(flow: str, bootstrap: str, topic: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    base: dict[str, Any] = {"bootstrap_servers": bootstrap, "client_id": "golden-aio"}
    group = f"{topic}-group"
    adm_topic = f"{topic}-adm"
    tp = TopicPartition(topic, 0)
    if flow in ("admin_create", "admin"):
        admin = AIOKafkaAdminClient(**base)
        await admin.start()
        try:
            if flow == "admin_create":
                await astep("create_topics", lambda: admin.create_topics(
                    [NewTopic(topic, 1, 1), NewTopic(adm_topic, 1, 1)]))
                await astep("list_topics", admin.list_topics)
                return
            await astep("describe_configs", lambda: admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]))
            await astep("create_partitions", lambda: admin.create_partitions(
                {adm_topic: NewPartitions(2)}))
            await astep("list_consumer_groups", admin.list_consumer_groups)
            await astep("describe_consumer_groups",
                        lambda: admin.describe_consumer_groups([group]))
            await astep("list_consumer_group_offsets",
                        lambda: admin.list_consumer_group_offsets(group))
            await astep("delete_records", lambda: admin.delete_records({tp: RecordsToDelete(1)}))
            await astep("describe_cluster", admin.describe_cluster)
            await astep("delete_topics", lambda: admin.delete_topics([adm_topic]))
        finally:
            await admin.close()
        return
    if flow.startswith("produce_"):
        acks, idempotent, codec = produce_settings(flow)
        producer = AIOKafkaProducer(**base, acks=acks if acks == "all" else int(acks),
                                    enable_idempotence=idempotent, compression_type=codec,
                                    linger_ms=20)
        if not await astep("start", producer.start):
            await asyncio.wait_for(producer.stop(), 15)
            return
        try:
            futures = []
            for i in range(RECORDS):
                key, value = record(i, flow)
                futures.append(await producer.send(topic, value, key=key,
                                                   headers=[("h", b"v")]))
            for i, fut in enumerate(futures):
                await astep(f"send {i}", lambda fut=fut: asyncio.wait_for(fut, 10))
        finally:
            await asyncio.wait_for(producer.stop(), 15)
        return
    if flow == "consume_assign":
        consumer = AIOKafkaConsumer(**base, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got = await aio_poll(consumer)
            report("fetch", got >= RECORDS, got)
            ts = int(time.time() * 1000) - 3_600_000
            await astep("offsets_for_times", lambda: consumer.offsets_for_times({tp: ts}))
            await astep("beginning_offsets", lambda: consumer.beginning_offsets([tp]))
            await astep("end_offsets", lambda: consumer.end_offsets([tp]))
        finally:
            await consumer.stop()
        return
    if flow == "consume_group":
        consumer = AIOKafkaConsumer(topic, **base, group_id=group, auto_offset_reset="earliest",
                                    enable_auto_commit=False, session_timeout_ms=10000,
                                    heartbeat_interval_ms=1000)
        await consumer.start()
        try:
            got = await aio_poll(consumer)
            report("group fetch", got >= RECORDS, got)
            await asyncio.sleep(HEARTBEAT_S)
            await astep("commit", consumer.commit)
            await astep("committed", lambda: consumer.committed(tp))
        finally:
            await consumer.stop()
        report("close (leave group)", True)
        return
    raise SystemExit(f"unknown flow {flow}")


async def aio_poll(consumer: Any) -> int:
    got = 0
    deadline = time.monotonic() + GROUP_TIMEOUT_S
    while got < RECORDS and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            got += len(records)
    return got


def main(argv: list[str]) -> int:
    client, flow, bootstrap, topic = argv
    if client == "confluent_kafka":
        ck_flow(flow, bootstrap, topic)
    elif client == "kafka_python":
        kp_flow(flow, bootstrap, topic)
    elif client == "aiokafka":
        asyncio.run(aio_flow(flow, bootstrap, topic))
    else:
        raise SystemExit(f"unknown client {client}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
