"""What one coordinator call produced: completed requests, records to append, markers to write.

Must not know: transaction rules; it only collects effects, hands them to the host in order, and
routes the host's reports (`persisted`, `markers_written`) to the callback that asked.
"""

from __future__ import annotations

from collections.abc import Callable

from redshank.cluster.txn.api import (
    Append,
    Completion,
    Output,
    Token,
    TxnRecord,
    TxnResult,
    WriteMarkers,
)
from redshank.protocol.error_codes import ErrorCode

__all__ = ["AppendCallback", "Effects", "MarkersCallback", "append_error"]

# Called with the append's outcome (NONE or the log's error) and the host's clock.
AppendCallback = Callable[[ErrorCode, int], None]
MarkersCallback = Callable[[int], None]


def append_error(error: ErrorCode) -> ErrorCode:
    """Map a failed `__transaction_state` append to what the client is told (Kafka's
    TransactionStateManager.appendTransactionToLog; a timed-out append is retriable)."""
    if error in (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.REQUEST_TIMED_OUT,
    ):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if error in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.KAFKA_STORAGE_ERROR):
        return ErrorCode.NOT_COORDINATOR
    if error in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE):
        return ErrorCode.UNKNOWN_SERVER_ERROR
    return error


class Effects:
    def __init__(self) -> None:
        self._completions: list[Completion] = []
        self._appends: list[Append] = []
        self._markers: list[WriteMarkers] = []
        # Invariant: every append handed out and not yet reported is a key here.
        self._waiting: dict[int, AppendCallback] = {}
        # Invariant: every marker set handed out and not yet written is a key here.
        self._writing: dict[int, MarkersCallback] = {}
        self._next_append_id = 1
        self._next_marker_id = 1
        self.wants_producer_ids = False

    def complete(self, token: Token, result: TxnResult) -> None:
        self._completions.append(Completion(token, result))

    def append(self, records: list[TxnRecord], callback: AppendCallback) -> int:
        append_id = self._next_append_id
        self._next_append_id += 1
        self._appends.append(Append(append_id, tuple(records)))
        self._waiting[append_id] = callback
        return append_id

    def persisted(self, append_id: int, error: ErrorCode, now_ms: int) -> None:
        callback = self._waiting.pop(append_id, None)
        if callback is not None:  # None: already failed by a resign, or never ours
            callback(error, now_ms)

    def fail_all(self, error: ErrorCode, now_ms: int) -> None:
        while self._waiting:  # a callback may append again; fail those too
            self.persisted(next(iter(self._waiting)), error, now_ms)

    def write_markers(self, markers: WriteMarkers, callback: MarkersCallback) -> None:
        self._markers.append(markers)
        self._writing[markers.marker_id] = callback

    def next_marker_id(self) -> int:
        marker_id = self._next_marker_id
        self._next_marker_id += 1
        return marker_id

    def markers_written(self, marker_id: int, now_ms: int) -> None:
        callback = self._writing.pop(marker_id, None)
        if callback is not None:  # None: dropped by a resign
            callback(now_ms)

    def drop_markers(self) -> None:
        self._writing.clear()

    def in_flight(self) -> tuple[int, int]:
        """(appends, marker sets) handed out and not yet reported."""
        return len(self._waiting), len(self._writing)

    def drain(self) -> Output:
        out = Output(
            tuple(self._completions), tuple(self._appends), tuple(self._markers),
            self.wants_producer_ids,
        )
        self._completions.clear()
        self._appends.clear()
        self._markers.clear()
        self.wants_producer_ids = False
        return out
