"""Raft, partitions, controller, group coordinator, Kafka API handlers. Sans-IO: no asyncio,
threads, processes or shared memory."""

__all__: list[str] = []
