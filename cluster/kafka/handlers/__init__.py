"""Kafka API handlers, one module per API, sans-IO: plan a request, build its response."""

from . import api_versions, create_topics, fetch, init_producer_id, list_offsets, metadata, produce

__all__ = [
    "api_versions",
    "create_topics",
    "fetch",
    "init_producer_id",
    "list_offsets",
    "metadata",
    "produce",
]
