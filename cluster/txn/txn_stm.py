"""Replay of a `__transaction_state` partition: the latest value per transactional id.

Applying records in log order leaves, per key, the last value written (a tombstone removes the
key), which is exactly what compaction keeps; the coordinator builds its transactions from the
result when loading completes.

Must not know: the coordinator's rules, where the records came from.
"""

from __future__ import annotations

from collections.abc import Iterable

from redshank.cluster.txn.api import TxnRecord
from redshank.cluster.txn.txn_records import TxnValue, decode_key, decode_value

__all__ = ["TxnStm"]


class TxnStm:
    def __init__(self) -> None:
        # Invariant: every value here is the last non-tombstone record of its key applied so far.
        self.values: dict[str, TxnValue] = {}
        self.applied = 0
        self.skipped = 0  # keys of a version we do not know (Kafka skips them too)

    def apply(self, record: TxnRecord) -> None:
        """Apply one record; raises TxnRecordError on a damaged key or value."""
        transactional_id = decode_key(record.key)
        if transactional_id is None:
            self.skipped += 1
            return
        self.applied += 1
        if record.value is None:
            self.values.pop(transactional_id, None)
        else:
            self.values[transactional_id] = decode_value(record.value)

    def apply_all(self, records: Iterable[TxnRecord]) -> None:
        for record in records:
            self.apply(record)
