"""The transaction coordinator of one `__transaction_state` partition, as a sans-IO state machine.

CONTRACT STUB: the signatures below are the interface the host (actors/txn_host.py) codes
against; the implementation replaces the bodies. Same life cycle as the group coordinator:

    host                          TxnCoordinator
    become leader             ->  begin_loading()          requests: COORDINATOR_LOAD_IN_PROGRESS
    replay the partition      ->  load(records) ...
                              ->  finish_loading(now)          ACTIVE; transactions found in
                                                               PrepareCommit/PrepareAbort get their
                                                               markers (again) in the Output
    request(token, req)       ->  request(token, req, now) ->  Output
    append done               ->  on_persisted(id, err, now) -> Output
    markers written           ->  on_markers_written(id, now) -> Output
    timer at next_deadline    ->  tick(now)                ->  Output (transaction timeouts abort)
    lost leadership           ->  resign(now)              ->  Output (waiters: NOT_COORDINATOR)

Must not know: sockets, actors, event loops, clocks, the Kafka wire format, how records are stored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from redshank.cluster.txn.api import (
    Output,
    ProducerIdBlock,
    Token,
    TxnRecord,
    TxnRequest,
)

__all__ = ["CoordinatorStatus", "TxnConfig", "TxnCoordinator"]


class CoordinatorStatus(enum.Enum):
    INACTIVE = "inactive"  # not the partition's leader: NOT_COORDINATOR
    LOADING = "loading"  # replaying the partition: COORDINATOR_LOAD_IN_PROGRESS
    ACTIVE = "active"


class TxnConfig:
    """Kafka's broker settings for transactions (defaults as Kafka's)."""

    def __init__(self, *, max_timeout_ms: int = 900_000,
                 transactional_id_expiration_ms: int = 604_800_000,
                 abort_timed_out_check_ms: int = 10_000) -> None:
        self.max_timeout_ms = max_timeout_ms
        self.transactional_id_expiration_ms = transactional_id_expiration_ms
        self.abort_timed_out_check_ms = abort_timed_out_check_ms


class TxnCoordinator:
    def __init__(self, partition: int, config: TxnConfig | None = None) -> None:
        self.partition = partition
        self.config = config or TxnConfig()

    @property
    def status(self) -> CoordinatorStatus:
        raise NotImplementedError

    def begin_loading(self) -> None:
        raise NotImplementedError

    def load(self, records: Iterable[TxnRecord]) -> None:
        raise NotImplementedError

    def finish_loading(self, now_ms: int, coordinator_epoch: int) -> Output:
        """`coordinator_epoch`: the partition leader's epoch (Raft term); markers carry it."""
        raise NotImplementedError

    def resign(self, now_ms: int) -> Output:
        raise NotImplementedError

    def add_producer_ids(self, block: ProducerIdBlock, now_ms: int) -> Output:
        raise NotImplementedError

    def request(self, token: Token, req: TxnRequest, now_ms: int) -> Output:
        raise NotImplementedError

    def on_persisted(self, append_id: int, error: int, now_ms: int) -> Output:
        raise NotImplementedError

    def on_markers_written(self, marker_id: int, now_ms: int) -> Output:
        raise NotImplementedError

    def tick(self, now_ms: int) -> Output:
        raise NotImplementedError

    def next_deadline_ms(self) -> int | None:
        raise NotImplementedError
