"""The API version table the broker advertises, and the header version of every request/response.

The ranges are what real clients send, measured (shared/notes/kafka-clients.md section 1): every
advertised version must be implemented, because clients use the highest one offered (notes G11,
G25). ConsumerGroupDescribe (69) and GetTelemetrySubscriptions (71) are never advertised:
librdkafka calls them whenever they are offered.

Must not know: sockets, handlers, or what a request means.
"""

from __future__ import annotations

import enum

from redshank.protocol.messages import REQUESTS, RESPONSES
from redshank.protocol.messages.api_versions import ApiVersion

__all__ = [
    "ADVERTISED",
    "API_VERSIONS_KEY",
    "ApiKey",
    "advertised_api_keys",
    "is_supported",
    "request_header_version",
    "response_header_version",
]


class ApiKey(enum.IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    WRITE_TXN_MARKERS = 27
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    DESCRIBE_TOPIC_PARTITIONS = 75


API_VERSIONS_KEY = ApiKey.API_VERSIONS

# api key -> (min, max) advertised; the recommended table of notes section 1.
ADVERTISED: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 9),
    ApiKey.FETCH: (4, 12),
    ApiKey.LIST_OFFSETS: (1, 7),
    ApiKey.METADATA: (0, 12),
    ApiKey.OFFSET_COMMIT: (2, 9),
    ApiKey.OFFSET_FETCH: (1, 9),
    ApiKey.FIND_COORDINATOR: (0, 6),
    ApiKey.JOIN_GROUP: (0, 7),
    ApiKey.HEARTBEAT: (0, 4),
    ApiKey.LEAVE_GROUP: (0, 5),
    ApiKey.SYNC_GROUP: (0, 5),
    ApiKey.DESCRIBE_GROUPS: (0, 5),
    ApiKey.LIST_GROUPS: (0, 5),
    ApiKey.SASL_HANDSHAKE: (0, 1),
    ApiKey.API_VERSIONS: (0, 4),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.DELETE_TOPICS: (1, 6),
    ApiKey.DELETE_RECORDS: (0, 2),
    # Transactions (issue 18): every version Kafka 3.9 defines (librdkafka 2.16 sends
    # InitProducerId 4, AddPartitionsToTxn 0, AddOffsetsToTxn 0, EndTxn 1; brokers alone send
    # AddPartitionsToTxn v4+).
    ApiKey.INIT_PRODUCER_ID: (0, 5),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (2, 4),
    ApiKey.ADD_PARTITIONS_TO_TXN: (0, 5),
    ApiKey.ADD_OFFSETS_TO_TXN: (0, 4),
    ApiKey.END_TXN: (0, 4),
    ApiKey.WRITE_TXN_MARKERS: (0, 1),  # KIP-98: the transaction coordinator's markers
    ApiKey.TXN_OFFSET_COMMIT: (0, 4),
    ApiKey.DESCRIBE_CONFIGS: (1, 4),
    ApiKey.ALTER_CONFIGS: (0, 2),
    ApiKey.SASL_AUTHENTICATE: (0, 2),
    ApiKey.CREATE_PARTITIONS: (0, 3),
    ApiKey.DELETE_GROUPS: (0, 2),
    ApiKey.ELECT_LEADERS: (0, 2),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (0, 1),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (0, 0),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (0, 0),
    ApiKey.OFFSET_DELETE: (0, 0),
    ApiKey.DESCRIBE_CLUSTER: (0, 1),
    ApiKey.DESCRIBE_PRODUCERS: (0, 0),  # KIP-664: a partition's active producers
    ApiKey.DESCRIBE_TRANSACTIONS: (0, 0),
    ApiKey.LIST_TRANSACTIONS: (0, 1),
    # kafka-python's describe_topic_partitions (KIP-966); librdkafka does not send it.
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: (0, 0),
}

# librdkafka uses these whenever advertised (notes G11): never offer them.
_NEVER = frozenset({69, 71})


def _check_table() -> None:
    """Fail at import if the table offers what the codec cannot speak (or must not offer)."""
    for key, (lo, hi) in ADVERTISED.items():
        if key in _NEVER:
            raise AssertionError(f"api key {key} must never be advertised")
        for registry in (REQUESTS, RESPONSES):
            cls = registry[key]
            meta = vars(cls)  # the registries are typed `type`; the generated ClassVars live here
            valid_lo, valid_hi = meta["VALID_VERSIONS"]
            top = valid_hi - 1 if meta["LATEST_VERSION_UNSTABLE"] else valid_hi
            if not valid_lo <= lo <= hi <= top:
                name = cls.__name__
                raise AssertionError(f"{name}: advertised {lo}-{hi} outside {valid_lo}-{top}")


_check_table()


def is_supported(api_key: int, version: int) -> bool:
    span = ADVERTISED.get(api_key)
    return span is not None and span[0] <= version <= span[1]


def _flexible(cls: type, version: int) -> bool:
    flex: int | None = vars(cls)["FLEXIBLE_FROM"]
    return flex is not None and version >= flex


def request_header_version(api_key: int, version: int) -> int:
    """v2 (with tagged fields) iff the request version is flexible, else v1 (notes 3.1)."""
    return 2 if _flexible(REQUESTS[api_key], version) else 1


def response_header_version(api_key: int, version: int) -> int:
    """v1 iff the response version is flexible, else v0; ApiVersions always v0 (KIP-511)."""
    if api_key == API_VERSIONS_KEY:
        return 0
    return 1 if _flexible(RESPONSES[api_key], version) else 0


def advertised_api_keys() -> tuple[ApiVersion, ...]:
    """The table as ApiVersionsResponse entries, in api key order."""
    return tuple(ApiVersion(key, lo, hi) for key, (lo, hi) in sorted(ADVERTISED.items()))
