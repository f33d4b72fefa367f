"""rpk-style format strings: compiling, rendering consumed records, reading produced ones."""

from __future__ import annotations

import pytest

from redshank.tools.record_format import (
    INPUT_FIELDS,
    FormatError,
    InputRecord,
    OutputRecord,
    RecordReader,
    compile_format,
)


def _read(fmt: str, data: bytes, chunk: int = 0) -> list[InputRecord]:
    reader = RecordReader(compile_format(fmt, INPUT_FIELDS))
    out: list[InputRecord] = []
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    for piece in pieces:
        out.extend(reader.feed(piece))
    out.extend(reader.close())
    return out


def test_escapes_and_percent() -> None:
    t = compile_format(r"%v\t100%%\n")
    assert t.parts == ("v", b"\t100%\n")


def test_unknown_placeholder_is_refused() -> None:
    with pytest.raises(FormatError, match="%x"):
        compile_format("%x")
    with pytest.raises(FormatError, match="%o"):
        compile_format("%o %v", INPUT_FIELDS)  # offsets are not read from input


def test_render_every_field() -> None:
    rec = OutputRecord("t", 2, 41, 1700, b"k", b"value", [("a", b"1"), ("b", None)])
    fmt = compile_format(r"%t/%p@%o %d %k=%v [%h] %K %V %H\n")
    assert rec.render(fmt) == b"t/2@41 1700 k=value [a=1,b] 1 5 2\n"
    assert OutputRecord("t", 0, 0, 0, None, None).render(compile_format("%k|%v")) == b"|"


@pytest.mark.parametrize("chunk", [0, 1, 3])
def test_read_key_headers_value_lines_in_any_chunking(chunk: int) -> None:
    data = b"k1 a=1,b=2 v one\n k2 v-two\nk3  v3"  # no headers; no key; no final newline
    got = _read(r"%k %h %v\n", data, chunk)
    assert [(r.key, r.headers, r.value) for r in got] == [
        (b"k1", [("a", b"1"), ("b", b"2")], b"v one"),
        (None, [("k2", None)], b"v-two"),
        (b"k3", [], b"v3"),
    ]


def test_read_partition_and_literals() -> None:
    got = _read(r"p=%p key=%k\n%v\n", b"p=1 key=a\nx\np=0 key=b\ny\n", 2)
    assert [(r.partition, r.key, r.value) for r in got] == [(1, b"a", b"x"), (0, b"b", b"y")]


def test_whole_input_as_one_value() -> None:
    assert [r.value for r in _read("%v", b"a\nb\n", 1)] == [b"a\nb\n"]


def test_empty_lines_are_empty_values() -> None:
    assert [r.value for r in _read(r"%v\n", b"a\n\nb\n")] == [b"a", b"", b"b"]


def test_a_field_never_runs_over_the_end_of_its_line() -> None:
    with pytest.raises(FormatError, match="record 2"):
        _read(r"%k %v\n", b"k1 v1\nnospace\nk3 v3\n", 1)


def test_bad_input_is_named_by_record() -> None:
    with pytest.raises(FormatError, match="record 1: partition b'x'"):
        _read(r"%p %v\n", b"x v\n")
    with pytest.raises(FormatError, match="record 2: expected b'key='"):
        _read(r"key=%k %v\n", b"key=a b\nk=c d\n")
    with pytest.raises(FormatError, match="need text between"):
        _read("%k%v", b"")
