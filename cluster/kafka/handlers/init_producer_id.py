"""InitProducerId (22): a producer id and epoch, fresh for an idempotent producer, from the
transaction coordinator for a transactional one.

Concern: the request's shape and the response. An idempotent producer's id comes from the
caller (allocated and persisted by the controller). A transactional id's request goes to its
coordinator (`to_api` / `build_txn`): it bumps the epoch, fences the previous producer and
aborts its open transaction (KIP-98). v3+ name the id and epoch a producer re-initialising had
(KIP-360); giving one without the other is INVALID_REQUEST, as in Kafka. PRODUCER_FENCED is
answered to v4+ only (older clients get INVALID_PRODUCER_EPOCH). Must not know: where ids come
from, actors, sockets.
"""

from __future__ import annotations

from redshank.cluster.kafka.handlers._txn import for_version
from redshank.cluster.txn.api import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    InitProducerIdResult,
)
from redshank.cluster.txn.api import (
    InitProducerIdRequest as TxnInit,
)
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.init_producer_id import (
    InitProducerIdRequest,
    InitProducerIdResponse,
)

__all__ = ["build", "build_txn", "to_api", "wants_id"]

_FENCED_FROM = 4  # v4 added PRODUCER_FENCED
_RESUME_FROM = 3  # v3 added ProducerId/ProducerEpoch (KIP-360)


def wants_id(request: InitProducerIdRequest) -> bool:
    """True for an idempotent (non-transactional) producer: the caller allocates its id."""
    return not request.transactional_id


def build(request: InitProducerIdRequest, producer_id: int | None) -> InitProducerIdResponse:
    """An idempotent producer's answer (`producer_id` None: none could be allocated now)."""
    del request
    if producer_id is None:
        return InitProducerIdResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                                      producer_id=-1, producer_epoch=-1)
    return InitProducerIdResponse(error_code=0, producer_id=producer_id, producer_epoch=0)


def to_api(request: InitProducerIdRequest, version: int) -> TxnInit | InitProducerIdResult:
    """The coordinator's request for a transactional id, or the answer when it is malformed."""
    assert request.transactional_id
    pid, epoch = ((request.producer_id, request.producer_epoch) if version >= _RESUME_FROM
                  else (NO_PRODUCER_ID, NO_PRODUCER_EPOCH))
    if (pid == NO_PRODUCER_ID) != (epoch == NO_PRODUCER_EPOCH):
        return InitProducerIdResult(ErrorCode.INVALID_REQUEST)
    return TxnInit(request.transactional_id, request.transaction_timeout_ms, pid, epoch)


def build_txn(result: InitProducerIdResult, version: int) -> InitProducerIdResponse:
    if result.error != ErrorCode.NONE:
        return InitProducerIdResponse(error_code=for_version(result.error, version, _FENCED_FROM),
                                      producer_id=-1, producer_epoch=-1)
    return InitProducerIdResponse(error_code=0, producer_id=result.producer_id,
                                  producer_epoch=result.producer_epoch)
