"""Sans-IO codecs: Kafka wire format, record batches, the connection state machine."""

from redshank.protocol.batch_validator import check_producer_batch
from redshank.protocol.compression import DEFAULT_MAX_DECOMPRESSED_SIZE, compress, decompress
from redshank.protocol.errors import (
    CorruptBatchError,
    CorruptRecordError,
    DecodeError,
    DecompressionBombError,
    DecompressionError,
    EncodeError,
    ProtocolError,
    UnknownCompressionError,
)
from redshank.protocol.records import (
    BatchBuilder,
    ControlRecord,
    ControlType,
    Record,
    build_batch,
    build_control_batch,
    iter_records,
    parse_control_record,
)

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "BatchBuilder",
    "ControlRecord",
    "ControlType",
    "CorruptBatchError",
    "CorruptRecordError",
    "DecodeError",
    "DecompressionBombError",
    "DecompressionError",
    "EncodeError",
    "ProtocolError",
    "Record",
    "UnknownCompressionError",
    "build_batch",
    "build_control_batch",
    "check_producer_batch",
    "compress",
    "decompress",
    "iter_records",
    "parse_control_record",
]
