"""Golden frames captured from real clients decode field by field and re-encode byte for byte.

The vectors in tests/protocol/golden/ were sent by confluent-kafka (librdkafka), kafka-python and
aiokafka (requests) and by a peer broker (responses); `capture.py` there regenerates them. Each
manifest entry carries `expect`: field values decoded by an independent oracle (kafka-python's own
schema-driven codec) under our snake_case names. For every frame this test splits the header,
decodes the body with our generated codec at the captured version, checks every expected path,
validates the record batches inside Produce/Fetch, and re-encodes: the bytes must come back
identical, except for the few frames the oracle also could not reproduce (the sender wrote
default-valued tagged fields, which we, like Kafka, omit) where the re-encoding must decode to the
same message instead. Frames the oracle itself rejects (a peer broker's malformed answers) must be
rejected by our decoder too, with a DecodeError.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from redshank.protocol.errors import DecodeError
from redshank.protocol.messages import REQUESTS, RESPONSES
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader
from redshank.protocol.record_batch import BATCH_OVERHEAD, HEADER_SIZE, validate_batch

GOLDEN = Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
ALL_FRAMES: list[dict[str, Any]] = MANIFEST["frames"]
# Frames the oracle could not decode: Tansu's malformed answers (gotcha G26), kept as bad input.
MALFORMED = [f for f in ALL_FRAMES if "oracle_error" in f]
FRAMES = [f for f in ALL_FRAMES if "oracle_error" not in f]
CLIENTS = ("confluent_kafka", "kafka_python", "aiokafka")
PRODUCE, FETCH = 0, 1

_STEP = re.compile(r"([a-z0-9_]+)((?:\[\d+\])*)")


def resolve(obj: Any, path: str) -> Any:
    """Follow a dotted path such as `topic_data[0].partition_data[0].records.len`."""
    parts = path.split(".")
    for n, part in enumerate(parts):
        if n == len(parts) - 1 and part in ("len", "hex") and n > 0:
            return len(obj) if part == "len" else bytes(obj).hex()
        m = _STEP.fullmatch(part)
        assert m, f"bad path step {part!r} in {path}"
        obj = getattr(obj, m.group(1))
        for index in re.findall(r"\[(\d+)\]", m.group(2)):
            obj = obj[int(index)]
    return obj


def normalise(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def split(entry: dict[str, Any]) -> tuple[bytes, Any, int]:
    frame = (GOLDEN / entry["file"]).read_bytes()
    header_cls = RequestHeader if entry["kind"] == "request" else ResponseHeader
    header, end = header_cls.decode_from(frame, 0, entry["header_version"])
    return frame, header, end


def body_class(entry: dict[str, Any]) -> Any:
    registry = REQUESTS if entry["kind"] == "request" else RESPONSES
    return registry[entry["api_key"]]


def record_sets(entry: dict[str, Any], msg: Any) -> list[Any]:
    """The `records` fields of a Produce request or a Fetch response."""
    if entry["api_key"] == PRODUCE and entry["kind"] == "request":
        return [p.records for t in msg.topic_data for p in t.partition_data]
    if entry["api_key"] == FETCH and entry["kind"] == "response":
        return [p.records for t in msg.responses for p in t.partitions]
    return []


def check_batches(records: Any) -> int:
    """Validate every batch header and CRC; returns the number of batches."""
    buf = memoryview(records)
    pos = count = 0
    while pos < len(buf):
        # a Fetch may end with a truncated batch (gotcha G18); none was seen in the captures
        assert len(buf) - pos >= HEADER_SIZE, f"truncated batch at {pos}"
        header = validate_batch(buf, pos)
        pos += BATCH_OVERHEAD + header.batch_length
        count += 1
    assert pos == len(buf)
    return count


def test_manifest_is_not_empty_and_files_exist() -> None:
    assert len(FRAMES) >= 150
    assert len(MALFORMED) <= 3, "the oracle rejected more than the known Tansu answers"
    for entry in ALL_FRAMES:
        assert (GOLDEN / entry["file"]).is_file(), entry["file"]
    for entry in FRAMES:  # no expectations only for an empty body (e.g. ApiVersions v0)
        assert entry["expect"] or entry["size"] == entry["header_size"], entry["file"]
    assert sum(not f["oracle_reencode_identical"] for f in FRAMES) <= 3


def test_produce_acks_and_idempotence_covered_for_every_client() -> None:
    """Produce with acks 0, 1, all and idempotent, plus a compressed batch, for all 3 clients."""
    for client in CLIENTS:
        produce = [f for f in FRAMES if f["client"] == client and f["api_key"] == PRODUCE
                   and f["kind"] == "request"]
        acks = {f["flow"]: f["expect"]["acks"] for f in produce}
        assert acks.get("produce_acks0") == 0, client
        assert acks.get("produce_acks1") == 1, client
        assert acks.get("produce_acks_all") == -1, client
        assert acks.get("produce_idempotent") == -1, client
        idempotent = [f for f in produce if f["flow"] == "produce_idempotent"]
        assert all(f["first_batch"]["producer_id"] >= 0 for f in idempotent), client
        assert any(f["first_batch"]["codec"] != "none" for f in produce), client


def test_coverage_of_apis_per_client() -> None:
    """Fetch, list offsets, the group APIs and admin are all represented."""
    covered = {(f["client"], f["api_key"]) for f in FRAMES}
    data_and_groups = {0, 1, 2, 3, 8, 9, 10, 11, 12, 14, 18, 22}
    admin = {15, 16, 19, 20, 21, 32, 37}
    for client in CLIENTS:
        missing = {k for k in data_and_groups | admin if (client, k) not in covered}
        assert not missing, f"{client} lacks api keys {sorted(missing)}"
    # LeaveGroup: aiokafka skips it because Tansu starts generations at 0 (gotcha G7)
    assert {("confluent_kafka", 13), ("kafka_python", 13)} <= covered
    # the MEMBER_ID_REQUIRED dance: a JoinGroup answered 79, then a successful one
    for client in CLIENTS:
        joins = [f["expect"]["error_code"] for f in FRAMES if f["client"] == client
                 and f["api_key"] == 11 and f["kind"] == "response"]
        assert 79 in joins and 0 in joins, client


@pytest.mark.parametrize("entry", FRAMES, ids=[f["file"] for f in FRAMES])
def test_golden_frame(entry: dict[str, Any]) -> None:
    frame, header, end = split(entry)
    assert end == entry["header_size"]
    for name, want in entry["header_expect"].items():
        assert getattr(header, name) == want, name
    if entry["kind"] == "request":
        assert header.request_api_key == entry["api_key"]
        assert header.request_api_version == entry["api_version"]
    assert header.correlation_id == entry["correlation_id"]
    assert header.encode(entry["header_version"]) == frame[:end]

    cls = body_class(entry)
    version = entry["api_version"]
    body = frame[end:]
    msg = cls.decode(body, version)
    for path, want in entry["expect"].items():
        assert normalise(resolve(msg, path)) == want, path

    for records in record_sets(entry, msg):
        if records is not None and len(records):
            assert check_batches(records) >= 1

    again = msg.encode(version)
    if entry["oracle_reencode_identical"]:
        assert again == body
    else:
        # the sender wrote default-valued tagged fields, which the encoder omits
        assert len(again) < len(body)
        assert cls.decode(again, version) == msg


@pytest.mark.parametrize("entry", MALFORMED, ids=[f["file"] for f in MALFORMED])
def test_malformed_peer_frame_is_a_decode_error(entry: dict[str, Any]) -> None:
    frame, _header, end = split(entry)
    with pytest.raises(DecodeError):
        body_class(entry).decode(frame[end:], entry["api_version"])
