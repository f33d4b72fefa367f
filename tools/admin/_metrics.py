"""`/metrics`: a prometheus_client collector over a node's per-core stats blocks.

Concern: at scrape time, reading every core's stats block once (`read_core_blocks`: snapshot,
counter words, partitions table) and turning it into metric families. Nothing is counted here
and nothing is kept between scrapes: the cores own every number (plain ints in shared memory);
a scrape costs the cores nothing. Must not know: HTTP, how cores produce the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from redshank.actors.kafka_probe import BUCKETS_S, Histogram, decode_counters
from redshank.actors.runtime import CoreBlock, read_core_blocks
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.error_codes import ErrorCode

__all__ = ["NodeCollector", "api_name", "error_name"]

_LE = (*(f"{b:g}" for b in BUCKETS_S), "+Inf")
# A core whose snapshot is older than this is reported down (its stats interval is 0.5 s).
STALE_S = 5.0


def api_name(key: int) -> str:
    try:
        return ApiKey(key).name.lower()
    except ValueError:
        return str(key)


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return str(code)


def _buckets(hist: Histogram) -> list[tuple[str, float]]:
    out, total = [], 0
    for le, count in zip(_LE, hist.counts, strict=True):
        total += count
        out.append((le, float(total)))
    return out


class NodeCollector(Collector):
    """Collects one node's figures from its data directory (`ncores` stats blocks)."""

    def __init__(self, node_dir: str, ncores: int) -> None:
        self.node_dir = node_dir
        self.ncores = ncores

    def collect(self) -> Iterator[Metric]:
        blocks = read_core_blocks(self.node_dir, self.ncores)
        yield from _cores(blocks)
        yield from _actors(blocks)
        yield from _mailboxes(blocks)
        yield from _kafka(blocks)
        yield from _partitions(blocks)


def _cores(blocks: list[CoreBlock]) -> Iterator[Metric]:
    up = GaugeMetricFamily("redshank_core_up", "1 while the core publishes its stats",
                           labels=["core"])
    uptime = GaugeMetricFamily("redshank_core_uptime_seconds", "Seconds since the core started",
                               labels=["core"])
    pending = GaugeMetricFamily("redshank_core_pending_requests",
                                "Cross-core requests awaiting a reply", labels=["core"])
    now = time.time()
    for b in blocks:
        core = str(b.core)
        fresh = b.stats is not None and now - float(b.stats.get("time", 0)) < STALE_S
        up.add_metric([core], 1.0 if fresh else 0.0)
        if b.stats is not None and "uptime_s" in b.stats:
            uptime.add_metric([core], float(b.stats["uptime_s"]))
            pending.add_metric([core], float(b.stats.get("pending_requests", 0)))
    yield from (up, uptime, pending)


def _actors(blocks: list[CoreBlock]) -> Iterator[Metric]:
    labels = ["core", "actor", "class"]
    depth = GaugeMetricFamily("redshank_actor_mailbox_depth",
                              "Messages waiting in an actor's inbox", labels=labels)
    messages = CounterMetricFamily("redshank_actor_messages", "Messages an actor handled",
                                   labels=labels)
    handler = CounterMetricFamily("redshank_actor_handler_seconds",
                                  "Time an actor spent in its handlers", labels=labels)
    failures = CounterMetricFamily("redshank_actor_failures", "Handler failures", labels=labels)
    for b in blocks:
        for a in (b.stats or {}).get("actors", ()):
            key = [str(b.core), str(a["name"]), str(a["class"])]
            if a.get("depth") is not None:
                depth.add_metric(key, float(a["depth"]))
            messages.add_metric(key, float(a["messages"]))
            handler.add_metric(key, float(a["handler_ms"]) / 1e3)
            failures.add_metric(key, float(a["failures"]))
    yield from (depth, messages, handler, failures)


def _mailboxes(blocks: list[CoreBlock]) -> Iterator[Metric]:
    labels = ["core", "peer", "direction"]
    depth = GaugeMetricFamily("redshank_mailbox_depth_bytes",
                              "Bytes in a core-to-core ring not yet read", labels=labels)
    frames = CounterMetricFamily("redshank_mailbox_frames", "Frames through a core-to-core ring",
                                 labels=labels)
    nbytes = CounterMetricFamily("redshank_mailbox_bytes", "Bytes through a core-to-core ring",
                                 labels=labels)
    overflow = GaugeMetricFamily("redshank_mailbox_overflow",
                                 "Frames queued because the ring to the peer is full",
                                 labels=["core", "peer"])
    for b in blocks:
        for m in (b.stats or {}).get("mailboxes", ()):
            core, peer = str(b.core), str(m["peer"])
            overflow.add_metric([core, peer], float(m.get("overflow", 0)))
            for direction in ("in", "out"):
                if f"{direction}_frames" not in m:
                    continue
                key = [core, peer, direction]
                depth.add_metric(key, float(m[f"{direction}_depth"]))
                frames.add_metric(key, float(m[f"{direction}_frames"]))
                nbytes.add_metric(key, float(m[f"{direction}_bytes"]))
    yield from (depth, frames, nbytes, overflow)


def _kafka(blocks: list[CoreBlock]) -> Iterator[Metric]:
    requests = CounterMetricFamily("redshank_kafka_requests",
                                   "Kafka requests answered, by API and error code",
                                   labels=["core", "api", "error"])
    latency = HistogramMetricFamily("redshank_kafka_request_latency_seconds",
                                    "From a request decoded to its response ready",
                                    labels=["core", "api"])
    flush = HistogramMetricFamily("redshank_disk_flush_latency_seconds",
                                  "A disk writer's flush round (its fdatasyncs)", labels=["core"])
    for b in blocks:
        counters = decode_counters(b.counters)
        core = str(b.core)
        for (api, code), n in sorted(counters.requests.items()):
            requests.add_metric([core, api_name(api), error_name(code)], float(n))
        for api, hist in sorted(counters.latency.items()):
            latency.add_metric([core, api_name(api)], _buckets(hist), hist.sum_s)
        if b.counters:
            flush.add_metric([core], _buckets(counters.flush), counters.flush.sum_s)
    yield from (requests, latency, flush)


def partition_rows(blocks: list[CoreBlock], node_id: int | None = None
                   ) -> list[dict[str, Any]]:
    """Every core's partitions table, merged (with the hosting core), by topic and partition;
    a single node's partitions (no replicas in their row) are led by `node_id`."""
    rows = [{**row, "core": b.core} for b in blocks
            for row in (b.tables or {}).get("partitions", ())]
    if node_id is not None:
        for row in rows:
            if row.get("replicas") is None:
                row.update(leader=node_id, replicas=[node_id])
    return sorted(rows, key=lambda r: (r["topic"], r["partition"]))


def _partitions(blocks: list[CoreBlock]) -> Iterator[Metric]:
    labels = ["topic", "partition"]
    families = {
        "high_watermark": GaugeMetricFamily("redshank_partition_high_watermark",
                                            "Offset after the last committed record",
                                            labels=labels),
        "log_start_offset": GaugeMetricFamily("redshank_partition_log_start_offset",
                                              "First offset still in the log", labels=labels),
        "log_end_offset": GaugeMetricFamily("redshank_partition_log_end_offset",
                                            "Offset after the last appended record",
                                            labels=labels),
        "bytes": GaugeMetricFamily("redshank_partition_bytes", "Bytes of the log's segments",
                                   labels=labels),
    }
    for row in partition_rows(blocks):
        key = [str(row["topic"]), str(row["partition"])]
        for field, family in families.items():
            family.add_metric(key, float(row[field]))
    yield from families.values()
