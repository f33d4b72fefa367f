"""The log engine: segments, indexes, recovery, retention, kvstore. Knows no Raft or Kafka."""

__all__: list[str] = []
