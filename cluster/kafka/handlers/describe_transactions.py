"""DescribeTransactions (65): wire <-> the transaction coordinators' `DescribedTransaction`s.

Each transactional id is asked of its own coordinator (the frontend routes them; an id whose
coordinator this node is not answers NOT_COORDINATOR, and admin clients find it again). Must
not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.txn.api import DescribedTransaction, DescribeTransactionsRequest
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import describe_transactions as wire

__all__ = ["build", "not_coordinator", "to_api"]


def to_api(request: wire.DescribeTransactionsRequest, version: int
           ) -> tuple[DescribeTransactionsRequest, ...]:
    """One request per transactional id, in request order (each to its coordinator)."""
    del version
    return tuple(DescribeTransactionsRequest((t,)) for t in request.transactional_ids)


def not_coordinator(transactional_id: str) -> DescribedTransaction:
    return DescribedTransaction(transactional_id, ErrorCode.NOT_COORDINATOR)


def build(described: list[DescribedTransaction], version: int
          ) -> wire.DescribeTransactionsResponse:
    del version
    return wire.DescribeTransactionsResponse(transaction_states=tuple(
        _one(d) for d in described))


def _one(d: DescribedTransaction) -> wire.TransactionState:
    if d.error != ErrorCode.NONE or d.state is None:
        return wire.TransactionState(error_code=d.error, transactional_id=d.transactional_id,
                                     transaction_start_time_ms=-1, producer_id=-1,
                                     producer_epoch=-1)
    topics: dict[str, list[int]] = {}
    for tp in d.partitions:
        topics.setdefault(tp.topic, []).append(tp.partition)
    return wire.TransactionState(
        error_code=0, transactional_id=d.transactional_id, transaction_state=d.state.value,
        transaction_timeout_ms=d.transaction_timeout_ms,
        transaction_start_time_ms=d.transaction_start_time_ms, producer_id=d.producer_id,
        producer_epoch=d.producer_epoch,
        topics=tuple(wire.TopicData(name, tuple(parts)) for name, parts in topics.items()))
