"""ListTransactions (66): wire <-> the transaction coordinators' `ListTransactionsRequest`.

A broker lists the transactions of the coordinators it hosts (admin clients ask every broker):
the frontend asks each and `build` merges their answers. A coordinator still loading makes the
whole answer COORDINATOR_LOAD_IN_PROGRESS (Kafka's TransactionStateManager), which admin
clients retry; one that is not the leader adds nothing. Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.txn.api import ListTransactionsRequest, ListTransactionsResult, TxnState
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import list_transactions as wire

__all__ = ["build", "to_api"]

_KNOWN_STATES = frozenset(s.value for s in TxnState)


def to_api(request: wire.ListTransactionsRequest, version: int) -> ListTransactionsRequest:
    return ListTransactionsRequest(tuple(request.state_filters),
                                   tuple(request.producer_id_filters),
                                   request.duration_filter if version >= 1 else -1)


def build(request: ListTransactionsRequest, results: list[ListTransactionsResult]
          ) -> wire.ListTransactionsResponse:
    """`results`: the answers of the coordinators asked (NOT_COORDINATOR ones are skipped)."""
    unknown = tuple(s for s in request.state_filters if s not in _KNOWN_STATES)
    error = ErrorCode.NONE
    states: list[wire.TransactionState] = []
    for r in results:
        if r.error == ErrorCode.NOT_COORDINATOR:
            continue
        if r.error != ErrorCode.NONE:
            error = r.error
            continue
        states.extend(wire.TransactionState(t.transactional_id, t.producer_id, t.state.value)
                      for t in r.transactions)
    if error != ErrorCode.NONE:
        return wire.ListTransactionsResponse(error_code=error, unknown_state_filters=unknown)
    return wire.ListTransactionsResponse(error_code=0, unknown_state_filters=unknown,
                                         transaction_states=tuple(states))
