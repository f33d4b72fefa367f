"""The sans-IO pieces of data transforms: the deployment and status records, the output
partition rule (Kafka's murmur2), the retry backoff, lazy record decoding and loading a
deployment's class from its source."""

from __future__ import annotations

import pytest

from redshank.actors.embed.transform import (
    InputRecord,
    Output,
    Transform,
    TransformLoadError,
    load_transform,
    module_name,
    records_of,
)
from redshank.actors.transform_spec import (
    BACKOFF_MAX_S,
    Deployment,
    Status,
    backoff,
    encode_batch,
    group_of,
    murmur2,
    output_partition,
)
from redshank.protocol.record_batch import Compression
from redshank.protocol.records import (
    ControlType,
    Record,
    build_batch,
    build_control_batch,
)


@pytest.mark.parametrize(("data", "expected"), [
    # Kafka's UtilsTest.testMurmur2
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_is_kafkas(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_output_partition_rule() -> None:
    assert output_partition(2, b"k", 3) == 2  # the output has the input's partition number
    assert output_partition(2, None, 3) == 2
    assert output_partition(5, b"abc", 3) == (479470107 & 0x7FFFFFFF) % 3  # else by key
    assert output_partition(5, None, 3) == 2  # else (no key) modulo


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(a) for a in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert backoff(50) == BACKOFF_MAX_S


def test_deployment_and_status_round_trip() -> None:
    dep = Deployment("up", "in", ("out", "side"), "Upper", "up.py", "print('é')\n")
    assert Deployment.decode(dep.encode()) == dep
    status = Status("failing", 10, 2, "x" * 2000, 123, 1)
    back = Status.decode(status.encode())
    assert back is not None and back.error == "x" * 500 and back.processed == 10
    assert Status.decode("") is None and Status.decode("not json") is None
    assert group_of("up") == "__transform.up"


def _batch(base: int, values: list[bytes | None], compression: Compression = Compression.NONE
           ) -> bytes:
    return build_batch([Record(base + i, 1000 + i, b"k%d" % i, v, (("h", b"v"),))
                        for i, v in enumerate(values)], base_offset=base,
                       compression=compression)


def test_records_of_skips_control_batches_and_earlier_offsets() -> None:
    data = (_batch(0, [b"a", b"b"], Compression.GZIP)
            + build_control_batch(ControlType.COMMIT, producer_id=1, producer_epoch=0,
                                  coordinator_epoch=0, timestamp=5, base_offset=2)
            + _batch(3, [b"c", None]))
    got = list(records_of("t", 4, data, start=1))
    assert [(r.offset, r.timestamp) for r in got] == [(1, 1001), (3, 1000), (4, 1001)]
    assert [r.value for r in got] == [b"b", b"c", None]
    assert got[0].key == b"k1" and got[0].headers == (("h", b"v"),)
    assert (got[0].topic, got[0].partition) == ("t", 4)


def test_input_record_decodes_only_when_read() -> None:
    (record,) = records_of("t", 0, _batch(7, [b"v"]))
    assert isinstance(record, InputRecord)
    assert record._data is not None  # offset and timestamp only, so far
    assert record.value == b"v"
    assert record._data is None and record.key == b"k0"


SOURCE = """
from redshank.actors.embed.transform import Output, Transform

class Upper(Transform):
    def process(self, record):
        yield Output(value=record.value.upper())

NOT_A_CLASS = 1
"""


def test_load_transform_runs_the_source_under_its_own_module() -> None:
    cls = load_transform("up.1", SOURCE, "up.py", "Upper")
    assert issubclass(cls, Transform) and cls.__module__ == module_name("up.1")
    (record,) = records_of("t", 0, _batch(0, [b"abc"]))
    assert list(cls().process(record) or ()) == [Output(value=b"ABC")]


@pytest.mark.parametrize(("source", "cls", "why"), [
    ("def broken(:\n", "X", "SyntaxError"),
    ("import no_such_module_here\n", "X", "No module named 'no_such_module_here'"),
    ("raise RuntimeError('at import')\n", "X", "RuntimeError: at import"),
    (SOURCE, "Missing", "defines no Transform class 'Missing'"),
    (SOURCE, "NOT_A_CLASS", "defines no Transform class"),
])
def test_load_transform_errors(source: str, cls: str, why: str) -> None:
    with pytest.raises(TransformLoadError, match=why):
        load_transform("bad", source, "bad.py", cls)


@pytest.mark.parametrize("records", [
    [(b"k", b"v", (), 1000)],
    [(None, None, (), 5), (b"k" * 300, b"v" * 20000, (("h", b"x"), ("n", None)), 3),
     (b"", b"", (), 10**12)],
    [(b"%d" % i, b"x" * (i % 200), (), 1700000000000 + i) for i in range(500)],
])
def test_encode_batch_is_what_batch_builder_builds(
        records: list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...],
                            int]]) -> None:
    expected = build_batch([Record(i, ts, k, v, h) for i, (k, v, h, ts) in enumerate(records)])
    assert encode_batch(records) == expected


def test_outputs_are_checked() -> None:
    from redshank.actors.transform_output import checked as _outputs

    outs = ("a", "b")
    assert _outputs(None, outs) == []
    assert _outputs(Output(b"v"), outs) == [Output(b"v")]
    assert _outputs(iter([Output(b"v", topic="b")]), outs) == [Output(b"v", topic="b")]
    for bad, why in [([b"raw"], "not an Output"), ([Output("text")], "bytes or None"),  # type: ignore[arg-type]
                     ([Output(b"v", topic="c")], "not an output")]:
        with pytest.raises(TypeError, match=why):
            _outputs(bad, outs)  # type: ignore[arg-type]
