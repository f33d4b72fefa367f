"""Sans-IO codecs: Kafka wire format, record batches, the connection state machine."""

from redshank.protocol.errors import CorruptBatchError, DecodeError, EncodeError, ProtocolError

__all__ = ["CorruptBatchError", "DecodeError", "EncodeError", "ProtocolError"]
