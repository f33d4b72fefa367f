"""kafka-python 3.0's own codec (generated at import time from its bundled, newer copy of the
same specs) as an independent oracle: bytes we encode decode with theirs, their re-encoding is
byte-identical, and decoding their bytes with ours gives our value back. Plus the tagged-field
rule that protects librdkafka < 2.2 (notes G2): a tagged field at its default is never written."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import warnings
from typing import Any

import pytest

from redshank.protocol.messages import REQUESTS, RESPONSES, api_versions, fetch, metadata, produce
from redshank.tools.codegen.generate import default_spec_dir
from redshank.tools.codegen.samples import sample
from redshank.tools.codegen.spec import load_api_specs

with warnings.catch_warnings():
    # kafka-python 3.0 loads its schemas with deprecated importlib.resources calls.
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol as kafka_protocol
    from kafka.protocol.api_message import ApiMessage

# The APIs the broker advertises (protocol.api_versions); the oracle covers every version of them
# that kafka-python also knows.
ORACLE_KEYS = (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 32, 33,
               36, 37, 42, 44, 60)


def _theirs() -> dict[tuple[int, bool], Any]:
    found: dict[tuple[int, bool], Any] = {}
    for info in pkgutil.walk_packages(kafka_protocol.__path__, "kafka.protocol."):
        try:
            with warnings.catch_warnings():
                # kafka-python loads its schemas with deprecated importlib.resources calls.
                warnings.simplefilter("ignore", DeprecationWarning)
                mod = importlib.import_module(info.name)
        except ImportError:
            continue
        for obj in vars(mod).values():
            if (isinstance(obj, type) and issubclass(obj, ApiMessage) and obj is not ApiMessage
                    and getattr(obj, "_json", None)):
                found[(obj.API_KEY, obj.is_request())] = obj
    return found


THEIRS = _theirs()
PAIRS = {req.api_key: (req, resp) for req, resp in load_api_specs(default_spec_dir())[0]}


def _cases() -> list[Any]:
    cases = []
    for key in ORACLE_KEYS:
        for is_request, msg in zip((True, False), PAIRS[key], strict=True):
            theirs = THEIRS[(key, is_request)]
            for v in range(msg.valid.lo, min(msg.valid.hi, theirs.max_version) + 1):
                cases.append(pytest.param(key, is_request, v, id=f"{msg.name}-v{v}"))
    return cases


@pytest.mark.parametrize(("key", "is_request", "version"), _cases())
def test_kafka_python_agrees_byte_for_byte(key: int, is_request: bool, version: int) -> None:
    msg = PAIRS[key][0 if is_request else 1]
    ours = (REQUESTS if is_request else RESPONSES)[key]
    theirs = THEIRS[(key, is_request)]
    for seed in range(2):
        value = sample(msg.body, ours, version, seed)
        if key == 18 and not is_request:
            # kafka-python reads any ApiVersions error reply in the v0 layout (KIP-511).
            value = dataclasses.replace(value, error_code=0)
        data = value.encode(version)
        decoded = theirs.decode(data, version=version)
        decoded._header = None  # kafka-python 3.0.12 forgets to set it on decode
        again = decoded.encode(version=version)
        assert again == data
        assert ours.decode(again, version) == value


def test_metadata_v12_field_by_field_from_kafka_python() -> None:
    from kafka.protocol.metadata.metadata import MetadataRequest as Theirs

    data = Theirs[12](topics=None, allow_auto_topic_creation=True).encode()
    assert data == b"\x00\x01\x00\x00"
    ours = metadata.MetadataRequest.decode(data, 12)
    assert ours.topics is None and ours.allow_auto_topic_creation is True
    assert ours.include_topic_authorized_operations is False


def test_produce_v9_from_kafka_python_keeps_records_zero_copy() -> None:
    from kafka.protocol.producer.produce import ProduceRequest as Theirs

    batch = bytes(range(256)) * 4
    request = Theirs[9](
        transactional_id=None, acks=-1, timeout_ms=1500,
        topic_data=[Theirs.TopicProduceData(name="t", partition_data=[
            Theirs.TopicProduceData.PartitionProduceData(index=3, records=batch)])],
    )
    data = request.encode()
    ours = produce.ProduceRequest.decode(data, 9)
    part = ours.topic_data[0].partition_data[0]
    assert (ours.acks, ours.timeout_ms, ours.topic_data[0].name, part.index) == (-1, 1500, "t", 3)
    assert isinstance(part.records, memoryview) and part.records == batch
    assert part.records.obj is data  # a slice of the input, not a copy


def test_tagged_fields_at_default_are_not_written() -> None:
    # ApiVersions v3 carries four tagged fields; at their defaults the section is one 0x00 byte
    # (librdkafka < 2.2, e.g. Debian's kcat, mis-skips tagged fields: notes G2).
    plain = api_versions.ApiVersionsResponse(api_keys=(api_versions.ApiVersion(18, 0, 4),))
    data = plain.encode(3)
    assert data == bytes.fromhex("0000" "02" "00120000000400" "00000000" "00")
    tagged = api_versions.ApiVersionsResponse(finalized_features_epoch=7)
    out = tagged.encode(3)
    # One tagged field: count 1, tag 1, size 8, int64 7.
    assert out.endswith(bytes.fromhex("01" "01" "08" "0000000000000007"))
    assert api_versions.ApiVersionsResponse.decode(out, 3) == tagged

    part = fetch.PartitionData(partition_index=1, records=b"")
    body = fetch.FetchResponse(responses=(fetch.FetchableTopicResponse("t", partitions=(part,)),))
    assert body.encode(12).count(b"\x01\x01") == 0
    moved = fetch.PartitionData(partition_index=1, records=b"",
                                current_leader=fetch.LeaderIdAndEpoch(leader_id=2, leader_epoch=4))
    with_leader = fetch.FetchResponse(
        responses=(fetch.FetchableTopicResponse("t", partitions=(moved,)),)
    ).encode(12)
    assert len(with_leader) == len(body.encode(12)) + 2 + 9  # tag, size, 2 x int32 + section
    assert fetch.FetchResponse.decode(with_leader, 12).responses[0].partitions[0] == moved


def test_unknown_tagged_fields_are_skipped() -> None:
    data = api_versions.ApiVersionsRequest(client_software_name="x").encode(3)
    assert data.endswith(b"\x00")
    extra = data[:-1] + bytes.fromhex("01" "2a" "03" "abcdef")  # tag 42, 3 bytes
    assert api_versions.ApiVersionsRequest.decode(extra, 3).client_software_name == "x"
