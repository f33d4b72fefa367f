"""The error-code table matches the values clients branch on (kafka-clients notes, section 4)."""

from __future__ import annotations

import pytest

from redshank.protocol.error_codes import ErrorCode


def test_codes_clients_branch_on_have_kafkas_values() -> None:
    expected = {
        "UNKNOWN_SERVER_ERROR": -1, "OFFSET_OUT_OF_RANGE": 1, "CORRUPT_MESSAGE": 2,
        "UNKNOWN_TOPIC_OR_PARTITION": 3, "NOT_LEADER_OR_FOLLOWER": 6, "MESSAGE_TOO_LARGE": 10,
        "COORDINATOR_LOAD_IN_PROGRESS": 14, "NOT_COORDINATOR": 16, "INVALID_REQUIRED_ACKS": 21,
        "ILLEGAL_GENERATION": 22, "UNKNOWN_MEMBER_ID": 25, "REBALANCE_IN_PROGRESS": 27,
        "UNSUPPORTED_VERSION": 35, "TOPIC_ALREADY_EXISTS": 36, "OUT_OF_ORDER_SEQUENCE_NUMBER": 45,
        "UNKNOWN_PRODUCER_ID": 59, "MEMBER_ID_REQUIRED": 79, "PRODUCER_FENCED": 90,
        "UNKNOWN_TOPIC_ID": 100, "INCONSISTENT_TOPIC_ID": 103,
    }
    assert {name: int(ErrorCode[name]) for name in expected} == expected


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_kafka_python_agrees_on_every_code_it_knows() -> None:
    # An independent table: kafka-python's errors module, keyed by the same wire values.
    from kafka import errors

    theirs = {
        cls.errno: cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.BrokerResponseError)
        and isinstance(getattr(cls, "errno", None), int)
    }
    # Java's CorruptRecordException is a RetriableException; kafka-python marks it fatal.
    java_differs = {ErrorCode.NONE, ErrorCode.CORRUPT_MESSAGE}
    checked = 0
    for code in ErrorCode:
        if code in theirs and code not in java_differs:
            assert code.retriable == bool(theirs[code].retriable), code
            checked += 1
    assert checked > 60
