"""InitProducerId (22): a fresh producer id, epoch 0, for non-transactional producers.

Concern: the request's shape and the response. The id comes from the caller (allocated and
persisted by the topic controller). A transactional id is refused with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED until transactions exist: this broker permits no
transactional id, and clients must fail fast (FindCoordinator names this node for it). Measured
with librdkafka 2.16 (`init_transactions(6)`): this code fails it fatally in about 0.5 s; every
code tried that does not claim authorization (UNSUPPORTED_VERSION, INVALID_REQUEST,
INVALID_TXN_STATE) is retried until the call times out; the only other fatal one,
INVALID_TRANSACTION_TIMEOUT, would send users tuning a timeout. Must not know: where ids come
from, actors, sockets.
"""

from __future__ import annotations

from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.init_producer_id import (
    InitProducerIdRequest,
    InitProducerIdResponse,
)

__all__ = ["build", "wants_id"]


def wants_id(request: InitProducerIdRequest) -> bool:
    """False when the request cannot be served (transactions are not implemented)."""
    return not request.transactional_id


def build(request: InitProducerIdRequest, producer_id: int | None) -> InitProducerIdResponse:
    if producer_id is None or request.transactional_id:
        # Transactional producers: no transactional id is permitted (module docstring).
        return InitProducerIdResponse(
            error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            if request.transactional_id
            else ErrorCode.COORDINATOR_NOT_AVAILABLE,
            producer_id=-1,
            producer_epoch=-1,
        )
    return InitProducerIdResponse(error_code=0, producer_id=producer_id, producer_epoch=0)
