"""`records_of`: the records a transform is fed from fetched batches, read_committed's aborted
transactions skipped (KIP-98, as Kafka's consumer skips them)."""

from __future__ import annotations

from redshank.actors.embed.transform import records_of
from redshank.protocol.records import ControlType, Record, build_batch, build_control_batch


def _batch(base: int, values: list[bytes], pid: int = -1, txn: bool = False) -> bytes:
    return build_batch([Record(offset=base + i, timestamp=1000, key=None, value=v)
                        for i, v in enumerate(values)], base_offset=base, producer_id=pid,
                       producer_epoch=0 if pid >= 0 else -1, is_transactional=txn)


def _marker(base: int, pid: int, kind: ControlType) -> bytes:
    return build_control_batch(kind, producer_id=pid, producer_epoch=0, coordinator_epoch=0,
                               timestamp=1000, base_offset=base)


def test_aborted_transactions_are_skipped_committed_ones_kept() -> None:
    data = b"".join([
        _batch(0, [b"plain-0", b"plain-1"]),
        _batch(2, [b"abort-a"], pid=7, txn=True),   # pid 7's aborted transaction from 2
        _batch(3, [b"commit-a"], pid=8, txn=True),  # pid 8's committed transaction
        _batch(4, [b"abort-b"], pid=7, txn=True),
        _marker(5, 7, ControlType.ABORT),
        _marker(6, 8, ControlType.COMMIT),
        _batch(7, [b"after"], pid=7, txn=True),      # pid 7's next transaction: committed
        _marker(8, 7, ControlType.COMMIT),
    ])
    every = [(r.offset, r.value) for r in records_of("t", 0, data)]
    assert every == [(0, b"plain-0"), (1, b"plain-1"), (2, b"abort-a"), (3, b"commit-a"),
                     (4, b"abort-b"), (7, b"after")]
    committed = [(r.offset, r.value) for r in records_of("t", 0, data, aborted=[(7, 2)])]
    assert committed == [(0, b"plain-0"), (1, b"plain-1"), (3, b"commit-a"), (7, b"after")]
    # From an offset inside the chunk: the aborted ones still skipped.
    assert [r.offset for r in records_of("t", 0, data, 3, aborted=[(7, 2)])] == [3, 7]
