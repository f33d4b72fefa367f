"""What the transaction APIs share: the error a client of a given version understands.

Kafka 3.9's `KafkaApis` answers PRODUCER_FENCED (KIP-588) only to the versions that added it
(InitProducerId v4+, AddPartitionsToTxn/AddOffsetsToTxn/EndTxn v2+); older clients get
INVALID_PRODUCER_EPOCH, which they handle the same way (the producer is fenced). Must not know:
actors, sockets.
"""

from __future__ import annotations

from redshank.protocol.error_codes import ErrorCode

__all__ = ["for_version"]


def for_version(error: ErrorCode | int, version: int, fenced_from: int) -> int:
    """`error` as a client of `version` understands it (`fenced_from`: the first version of the
    API that knows PRODUCER_FENCED)."""
    if error == ErrorCode.PRODUCER_FENCED and version < fenced_from:
        return int(ErrorCode.INVALID_PRODUCER_EPOCH)
    return int(error)
