"""What one coordinator call produced: completed requests, records to append, groups touched.

Must not know: group rules; it only collects effects and hands them to the host in order.
"""

from __future__ import annotations

from collections.abc import Callable

from redshank.cluster.group.api import (
    NO_PRODUCER_ID,
    Append,
    Completion,
    GroupRecord,
    GroupResult,
    Output,
    Token,
    TxnMarker,
)
from redshank.cluster.group.classic_group import ClassicGroup
from redshank.protocol.error_codes import ErrorCode

__all__ = ["AppendCallback", "Effects", "append_error"]

# Called with the append's outcome (NONE or the log's error) and the host's clock.
AppendCallback = Callable[[ErrorCode, int], None]


def append_error(error: ErrorCode, *, offsets: bool) -> ErrorCode:
    """Map a failed `__consumer_offsets` append to what the client is told (Kafka's mapping)."""
    if error in (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    ):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if error in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.KAFKA_STORAGE_ERROR):
        return ErrorCode.NOT_COORDINATOR
    if error is ErrorCode.REQUEST_TIMED_OUT:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE if offsets else ErrorCode.REBALANCE_IN_PROGRESS
    if error in (
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.RECORD_LIST_TOO_LARGE,
        ErrorCode.INVALID_FETCH_SIZE,
    ):
        return ErrorCode.INVALID_COMMIT_OFFSET_SIZE if offsets else ErrorCode.UNKNOWN_SERVER_ERROR
    return error


class Effects:
    def __init__(self) -> None:
        self._completions: list[Completion] = []
        self._appends: list[Append] = []
        # Invariant: every append handed out and not yet reported is a key here.
        self._waiting: dict[int, AppendCallback | None] = {}
        self._next_append_id = 1
        # The log order of the last append reported persisted (replay: of the last record
        # read): a later write of the same offset key wins over an earlier one (Kafka compares
        # record offsets when a transaction's offsets meet regular commits).
        self.position = 0
        self.dirty: dict[int, ClassicGroup] = {}

    def complete(self, token: Token, result: GroupResult) -> None:
        self._completions.append(Completion(token, result))

    def append(self, records: list[GroupRecord], callback: AppendCallback | None, *,
               producer_id: int = NO_PRODUCER_ID, producer_epoch: int = -1,
               marker: TxnMarker | None = None) -> int:
        append_id = self._next_append_id
        self._next_append_id += 1
        self._appends.append(Append(append_id, tuple(records), producer_id, producer_epoch,
                                    marker))
        self._waiting[append_id] = callback
        return append_id

    def persisted(self, append_id: int, error: ErrorCode, now_ms: int) -> None:
        if append_id not in self._waiting:
            return  # already failed by a resign, or never ours
        if error == ErrorCode.NONE:
            self.position += 1  # reported in append order: this is the log order
        callback = self._waiting.pop(append_id)
        if callback is not None:
            callback(error, now_ms)

    def fail_all(self, error: ErrorCode, now_ms: int) -> None:
        while self._waiting:  # a callback may append again; fail those too
            self.persisted(next(iter(self._waiting)), error, now_ms)

    def in_flight(self) -> int:
        return len(self._waiting)

    def touch(self, group: ClassicGroup) -> None:
        self.dirty[id(group)] = group

    def take_dirty(self) -> list[ClassicGroup]:
        groups = list(self.dirty.values())
        self.dirty.clear()
        return groups

    def drain(self) -> Output:
        out = Output(tuple(self._completions), tuple(self._appends))
        self._completions.clear()
        self._appends.clear()
        return out
