"""offset_translator: configuration and no-op entries take no Kafka offsets."""

from __future__ import annotations

from redshank.cluster.raft import (
    Config,
    Entry,
    EntryKind,
    Index,
    NodeId,
    Offset,
    OffsetTranslator,
    Term,
)
from redshank.cluster.raft.batches import batch_of

CFG = Config(voters=frozenset({NodeId(1)}))


def log() -> list[Entry]:
    t = Term(1)
    return [
        Entry(t, Index(1), EntryKind.NOOP),
        Entry(t, Index(2), batch=batch_of((b"a", b"b"))),
        Entry(t, Index(3), EntryKind.CONFIG, config=CFG),
        Entry(t, Index(4), batch=batch_of((b"c",))),
        Entry(t, Index(5), EntryKind.CONFIG, config=CFG),
        Entry(t, Index(6), batch=batch_of((b"d", b"e", b"f"))),
    ]


def test_config_batches_do_not_shift_offsets() -> None:
    tr = OffsetTranslator()
    for e in log():
        tr.append(e)
    assert [tr.to_kafka(Index(i)) for i in (2, 4, 6)] == [0, 2, 3]
    assert tr.next_offset() == 6
    assert [tr.to_raft(Offset(o)) for o in range(6)] == [2, 2, 4, 6, 6, 6]
    assert tr.to_raft(Offset(6)) is None
    assert tr.end_offset(Index(3)) == 2 and tr.end_offset(Index(0)) == 0


def test_truncation_keeps_earlier_offsets_meaning() -> None:
    tr = OffsetTranslator()
    for e in log():
        tr.append(e)
    before = {o: tr.to_raft(Offset(o)) for o in range(3)}
    tr.truncate(Index(5))
    tr.append(Entry(Term(2), Index(5), batch=batch_of((b"z",))))
    assert {o: tr.to_raft(Offset(o)) for o in range(3)} == before
    assert tr.to_raft(Offset(3)) == 5 and tr.next_offset() == 4
