"""The per-core runtime and the actors that host the cluster and storage layers."""

# Registers the envelope codecs of the messages that carry record batches between cores. Here,
# so that every process that imports any module of this package (each core process imports its
# setup's module) has them on both ends of its rings before its first frame.
from redshank.actors import partition_codecs as _partition_codecs  # noqa: F401

__all__: list[str] = []
