"""The advertised version table and the header version rules."""

from __future__ import annotations

import pytest

from redshank.protocol.api_versions import (
    ADVERTISED,
    advertised_api_keys,
    is_supported,
    request_header_version,
    response_header_version,
)
from redshank.protocol.messages import REQUESTS, RESPONSES

# Issue 2, item 6 (measured from real clients: shared/notes/kafka-clients.md section 1), and
# ElectLeaders 0-2, Alter/ListPartitionReassignments 0 (issue 14: every version Kafka 3.9
# defines; only admin clients send them), OffsetDelete 0 (issue 17: the only version;
# AdminClient's delete_consumer_group_offsets), DescribeTopicPartitions 0 (issue 17: the only
# version; kafka-python's describe_topic_partitions), and the transaction APIs (issue 18:
# every version Kafka 3.9 defines; WriteTxnMarkers for the transaction coordinator,
# DescribeProducers/Transactions and ListTransactions for admin clients).
EXPECTED = {0: (3, 9), 1: (4, 12), 2: (1, 7), 3: (0, 12), 8: (2, 9), 9: (1, 9), 10: (0, 6),
            11: (0, 7), 12: (0, 4), 13: (0, 5), 14: (0, 5), 15: (0, 5), 16: (0, 5), 17: (0, 1),
            18: (0, 4), 19: (2, 7), 20: (1, 6), 21: (0, 2), 22: (0, 5), 23: (2, 4), 24: (0, 5),
            25: (0, 4), 26: (0, 4), 27: (0, 1), 28: (0, 4), 32: (1, 4),
            33: (0, 2), 36: (0, 2), 37: (0, 3), 42: (0, 2), 43: (0, 2), 44: (0, 1), 45: (0, 0),
            46: (0, 0), 47: (0, 0), 60: (0, 1), 61: (0, 0), 65: (0, 0), 66: (0, 1), 75: (0, 0)}


def test_table_is_the_measured_one() -> None:
    assert {int(k): v for k, v in ADVERTISED.items()} == EXPECTED
    assert [(e.api_key, e.min_version, e.max_version) for e in advertised_api_keys()] == sorted(
        (k, lo, hi) for k, (lo, hi) in EXPECTED.items()
    )


def test_never_advertises_consumer_group_describe_or_telemetry() -> None:
    assert 69 not in ADVERTISED and 71 not in ADVERTISED
    assert not is_supported(69, 0) and not is_supported(71, 0)


def test_never_advertises_an_unstable_or_unknown_version() -> None:
    for key, (_lo, hi) in ADVERTISED.items():
        for cls in (REQUESTS[key], RESPONSES[key]):
            top = cls.VALID_VERSIONS[1] - (1 if cls.LATEST_VERSION_UNSTABLE else 0)
            assert hi <= top, cls.__name__


@pytest.mark.parametrize(
    ("key", "version", "req_hv", "resp_hv"),
    [
        (0, 8, 1, 0), (0, 9, 2, 1),  # Produce flexible from 9
        (1, 11, 1, 0), (1, 12, 2, 1),  # Fetch flexible from 12
        (3, 8, 1, 0), (3, 9, 2, 1),  # Metadata flexible from 9
        (18, 2, 1, 0), (18, 3, 2, 0), (18, 4, 2, 0),  # ApiVersions response header always v0
        (17, 1, 1, 0),  # SaslHandshake is never flexible
        (60, 0, 2, 1),  # DescribeCluster flexible from 0
    ],
)
def test_header_versions(key: int, version: int, req_hv: int, resp_hv: int) -> None:
    assert request_header_version(key, version) == req_hv
    assert response_header_version(key, version) == resp_hv


def test_is_supported_bounds() -> None:
    assert is_supported(0, 3) and is_supported(0, 9)
    assert not is_supported(0, 2) and not is_supported(0, 10) and not is_supported(999, 0)
