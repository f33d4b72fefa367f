"""InitProducerId (22): a fresh producer id, epoch 0, for non-transactional producers.

Concern: the request's shape (a transactional id is not supported yet) and the response. The id
comes from the caller (allocated and persisted by the topic controller). Must not know: where
ids come from, actors, sockets.
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
        # Transactional producers: Kafka answers this code when transactions are unavailable.
        return InitProducerIdResponse(
            error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            if request.transactional_id
            else ErrorCode.COORDINATOR_NOT_AVAILABLE,
            producer_id=-1,
            producer_epoch=-1,
        )
    return InitProducerIdResponse(error_code=0, producer_id=producer_id, producer_epoch=0)
