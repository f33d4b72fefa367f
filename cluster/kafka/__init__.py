"""The Kafka API side of the broker, sans-IO: topic table, producer state, per-API handlers."""

from .leaders_table import UNKNOWN_EPOCH, LeadersTable
from .producer_state import Duplicate, ProducerStateTable, SequenceError
from .topic_table import (
    DEFAULT_MAX_MESSAGE_BYTES,
    CoreId,
    TopicInfo,
    TopicPartition,
    TopicTable,
    assign_cores,
    decode_topic,
    encode_topic,
    topic_key,
    validate_topic_name,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "UNKNOWN_EPOCH",
    "CoreId",
    "Duplicate",
    "LeadersTable",
    "ProducerStateTable",
    "SequenceError",
    "TopicInfo",
    "TopicPartition",
    "TopicTable",
    "assign_cores",
    "decode_topic",
    "encode_topic",
    "topic_key",
    "validate_topic_name",
]
