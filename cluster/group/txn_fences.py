"""Which transaction writes to a `__consumer_offsets` partition are stale (KIP-98 fencing).

Per producer id, the highest producer epoch and transaction coordinator epoch of the markers
written to the partition (live or replayed). A TxnOffsetCommit or a marker with a lower
producer epoch comes from a fenced producer or is an old retry: INVALID_PRODUCER_EPOCH (Kafka's
producer state check on the partition, which the client treats as fenced); a marker from a
lower coordinator epoch comes from a transaction coordinator that lost its partition:
TRANSACTION_COORDINATOR_FENCED. Without this, a zombie's TxnOffsetCommit arriving after its
transaction was aborted would wait pending under the producer id and be committed by the next
instance's marker.

Must not know: groups, records, where the markers come from.
"""

from __future__ import annotations

from redshank.cluster.group.api import TxnMarker
from redshank.protocol.error_codes import ErrorCode

__all__ = ["ProducerFences"]


class ProducerFences:
    def __init__(self) -> None:
        # Invariant: each entry is the maximum (producer epoch, coordinator epoch) of the
        # markers of that producer id applied so far.
        self._seen: dict[int, tuple[int, int]] = {}

    def check(self, producer_id: int, producer_epoch: int,
              coordinator_epoch: int | None = None) -> ErrorCode | None:
        """The error a write of `producer_id` at these epochs gets, or None when it is current
        (`coordinator_epoch` only for markers)."""
        known = self._seen.get(producer_id)
        if known is None:
            return None
        if producer_epoch < known[0]:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        if coordinator_epoch is not None and coordinator_epoch < known[1]:
            return ErrorCode.TRANSACTION_COORDINATOR_FENCED
        return None

    def record(self, marker: TxnMarker) -> None:
        epoch, coordinator_epoch = self._seen.get(marker.producer_id, (-1, -1))
        self._seen[marker.producer_id] = (max(epoch, marker.producer_epoch),
                                          max(coordinator_epoch, marker.coordinator_epoch))
