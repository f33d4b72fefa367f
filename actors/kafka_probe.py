"""The Kafka probe of a core: requests by API key and error code, their latency, and the disk
writer's flush latency, as plain integers in the core's counter words (the stats block's
`process_counters`, read by the admin API's `/metrics` from another process).

Concern: the layout of those words, the few increments the hot path does (a request answered:
three; a flush round: three), and decoding a copy of the words back into numbers. No locks, no
objects per request, nothing logged. Must not know: sessions, partitions, HTTP.

    words  [0, APIS * ERROR_SLOTS)          requests answered, by (api key, error code + 1)
           [.., + APIS * HIST_WORDS)        latency per api key: BUCKETS counts, then the sum (ns)
           [.., + HIST_WORDS)               disk-writer flush rounds: BUCKETS counts, then sum (ns)

A request's error code is its response's top-level `error_code`; for Produce (which has none)
the first partition's error that is not NONE, for the others without one (Metadata, CreateTopics,
DeleteTopics, DescribeGroups, ...) the first such error of their topics, results or groups.
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter_ns
from typing import Any

from redshank.actors.runtime import COUNTER_WORDS, process_counters
from redshank.protocol.api_versions import ApiKey
from redshank.protocol.fast_dataclass import dataclass

__all__ = ["BUCKETS_S", "KafkaCounters", "KafkaProbe", "decode_counters", "kafka_probe"]

APIS = 64  # api keys 0-63 (every key served is below 61); others are not counted
ERROR_SLOTS = 132  # error codes -1..130 (the last slot takes any higher code)
# Upper bounds (le) of the latency buckets, seconds; the last bucket is +Inf.
BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
             1.0, 2.5, 5.0)
_BOUNDS_NS = tuple(int(b * 1e9) for b in BUCKETS_S)
_NBUCKETS = len(BUCKETS_S) + 1
HIST_WORDS = _NBUCKETS + 1
_LATENCY_AT = APIS * ERROR_SLOTS
_FLUSH_AT = _LATENCY_AT + APIS * HIST_WORDS
_END = _FLUSH_AT + HIST_WORDS
assert _END <= COUNTER_WORDS
_ITEM_LISTS = ("topics", "results", "groups", "responses")


def _error_of(api_key: int, response: Any) -> int:
    if api_key == ApiKey.PRODUCE:
        for topic in response.responses:
            for part in topic.partition_responses:
                if part.error_code:
                    return int(part.error_code)
        return 0
    code = getattr(response, "error_code", None)
    if code is not None:
        return int(code)
    for name in _ITEM_LISTS:  # per-topic (per-group, ...) errors of the admin APIs
        items = getattr(response, name, None)
        if items is not None:
            return next((int(i.error_code) for i in items
                         if getattr(i, "error_code", 0)), 0)
    return 0


class KafkaProbe:
    """Increments into one process's counter words; one per core process (`kafka_probe()`)."""

    __slots__ = ("_words",)

    def __init__(self, words: memoryview) -> None:
        self._words = words

    def request(self, api_key: int, response: Any, started_ns: int) -> None:
        """A request answered (`started_ns`: perf_counter_ns when it was decoded)."""
        elapsed = perf_counter_ns() - started_ns
        if not 0 <= api_key < APIS:
            return
        slot = min(_error_of(api_key, response) + 1, ERROR_SLOTS - 1)
        words = self._words
        words[api_key * ERROR_SLOTS + max(slot, 0)] += 1
        hist = _LATENCY_AT + api_key * HIST_WORDS
        words[hist + bisect_left(_BOUNDS_NS, elapsed)] += 1
        words[hist + _NBUCKETS] += elapsed

    def flush(self, elapsed_ns: int) -> None:
        """A flush round of the disk writer took `elapsed_ns` (its fdatasyncs included)."""
        words = self._words
        words[_FLUSH_AT + bisect_left(_BOUNDS_NS, elapsed_ns)] += 1
        words[_FLUSH_AT + _NBUCKETS] += elapsed_ns


_probe: KafkaProbe | None = None


def kafka_probe() -> KafkaProbe:
    """This process's probe, over its stats block's counter words (take it after the core's
    stats block exists: a session or the disk writer takes it when created)."""
    global _probe
    words = process_counters()
    if _probe is None or _probe._words is not words:
        _probe = KafkaProbe(words)
    return _probe


@dataclass(frozen=True, slots=True)
class Histogram:
    counts: tuple[int, ...]  # per bucket (not cumulative), the last one +Inf
    sum_s: float


@dataclass(frozen=True, slots=True)
class KafkaCounters:
    requests: dict[tuple[int, int], int]  # (api key, error code) -> requests answered
    latency: dict[int, Histogram]  # api key -> latency (only keys with requests)
    flush: Histogram


def _histogram(words: list[int], at: int) -> Histogram:
    return Histogram(tuple(words[at : at + _NBUCKETS]), words[at + _NBUCKETS] / 1e9)


def decode_counters(words: list[int]) -> KafkaCounters:
    """A copy of a core's counter words (empty: no block) as numbers."""
    if len(words) < _END:
        return KafkaCounters({}, {}, Histogram((0,) * _NBUCKETS, 0.0))
    requests = {(i // ERROR_SLOTS, i % ERROR_SLOTS - 1): n
                for i, n in enumerate(words[:_LATENCY_AT]) if n}
    latency = {}
    for api in {api for api, _ in requests}:
        latency[api] = _histogram(words, _LATENCY_AT + api * HIST_WORDS)
    return KafkaCounters(requests, latency, _histogram(words, _FLUSH_AT))
