"""EndTxn (26): wire <-> the transaction coordinator's `EndTxnRequest` / `EndTxnResult`.

Must not know: actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.kafka.handlers._txn import for_version
from redshank.cluster.txn.api import EndTxnRequest, EndTxnResult
from redshank.protocol.messages import end_txn as wire

__all__ = ["build", "to_api"]

_FENCED_FROM = 2  # v2 added PRODUCER_FENCED


def to_api(request: wire.EndTxnRequest, version: int) -> EndTxnRequest:
    del version
    return EndTxnRequest(request.transactional_id, request.producer_id, request.producer_epoch,
                         request.committed)


def build(result: EndTxnResult, version: int) -> wire.EndTxnResponse:
    return wire.EndTxnResponse(error_code=for_version(result.error, version, _FENCED_FROM))
