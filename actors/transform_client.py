"""A small asyncio Kafka client for the transforms of a cluster-mode node: what the core's own
request paths cannot reach.

Concern: in cluster mode a core serves only the partitions (and group coordinators) whose
replica on this node leads; the produce path answers NOT_LEADER_OR_FOLLOWER for an output
partition led by another node, and the group paths NOT_COORDINATOR for a group coordinated
elsewhere, and there is no internal forwarding of Kafka requests between nodes. So a transform
instance sends those over Kafka's wire, as any client would: Metadata (from this node's own
listener, which knows every partition's leader through `peer_views`) names the leader,
FindCoordinator the group's coordinator, and the request goes there. A leader or coordinator
that moved (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR, a refused connection) drops the cached
address; the caller retries with backoff, and the next call asks again.

One connection per address, one request at a time on it (a lock), every wait bounded by
`timeout_s`; a connection that fails is closed and opened again on next use. Versions are fixed
ones both Kafka 3.x and Redshank serve. Lives on the loop of the core that created it (one per
transform manager, shared by its instances); closed with the manager. Must not know: what a
transform is, cores, actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

from redshank.protocol.api_versions import request_header_version, response_header_version
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages import fetch as fm
from redshank.protocol.messages import find_coordinator as fc
from redshank.protocol.messages import metadata as md
from redshank.protocol.messages import offset_commit as oc
from redshank.protocol.messages import offset_fetch as of
from redshank.protocol.messages import produce as pm
from redshank.protocol.messages.request_header import RequestHeader
from redshank.protocol.messages.response_header import ResponseHeader

__all__ = ["WireClient"]

_SIZE = struct.Struct(">i")
CLIENT_ID = "redshank-transform"
_METADATA_VERSION = 9
_FIND_COORDINATOR_VERSION = 3
_PRODUCE_VERSION = 9
_COMMIT_VERSION = 8
_OFFSET_FETCH_VERSION = 7
_FETCH_VERSION = 11

Address = tuple[str, int]
_MOVED = (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH)
_COORDINATOR_MOVED = (ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE)


class _Connection:
    def __init__(self, address: Address) -> None:
        self.address = address
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()
        self.correlation_id = 0

    async def call(self, request: Any, version: int, response_type: Any, timeout_s: float
                   ) -> Any:
        async with self.lock:
            try:
                return await asyncio.wait_for(self._call(request, version, response_type),
                                              timeout_s)
            except BaseException:
                self.close()  # a half-read answer must not be taken for the next one's
                raise

    async def _call(self, request: Any, version: int, response_type: Any) -> Any:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(*self.address)
        assert self.reader is not None
        self.correlation_id += 1
        key = request.API_KEY
        body = (RequestHeader(key, version, self.correlation_id, CLIENT_ID).encode(
            request_header_version(key, version)) + request.encode(version))
        self.writer.write(_SIZE.pack(len(body)) + body)
        await self.writer.drain()
        size = _SIZE.unpack(await self.reader.readexactly(4))[0]
        frame = await self.reader.readexactly(size)
        header, pos = ResponseHeader.decode_from(frame, 0, response_header_version(key, version))
        if header.correlation_id != self.correlation_id:
            raise ConnectionError(f"{self.address}: answer to {header.correlation_id}, "
                                  f"expected {self.correlation_id}")
        response, _ = response_type.decode_from(frame, pos, version)
        return response

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class WireClient:
    """Kafka requests to whichever node leads or coordinates, bootstrapped from `bootstrap`
    (this node's own listener). Methods return Kafka error codes; OSError and TimeoutError
    (unreachable) come back as their codes too, so callers retry one way."""

    def __init__(self, bootstrap: Address, timeout_s: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self._conns: dict[Address, _Connection] = {}
        self._leaders: dict[tuple[str, int], Address] = {}
        self._coordinators: dict[str, Address] = {}

    async def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns = {}

    async def _call(self, address: Address, request: Any, version: int, response_type: Any
                    ) -> Any:
        conn = self._conns.get(address)
        if conn is None:
            conn = self._conns[address] = _Connection(address)
        return await conn.call(request, version, response_type, self.timeout_s)

    # -- where ------------------------------------------------------------------------------------
    async def leader(self, topic: str, partition: int) -> Address | None:
        known = self._leaders.get((topic, partition))
        if known is not None:
            return known
        req = md.MetadataRequest(topics=(md.MetadataRequestTopic(name=topic),),
                                 allow_auto_topic_creation=False)
        with contextlib.suppress(OSError, TimeoutError, ConnectionError,
                                 asyncio.IncompleteReadError):
            resp = await self._call(self.bootstrap, req, _METADATA_VERSION,
                                    md.MetadataResponse)
            brokers = {b.node_id: (b.host, b.port) for b in resp.brokers}
            for t in resp.topics:
                for p in t.partitions:
                    address = brokers.get(p.leader_id)
                    if p.error_code == ErrorCode.NONE and address is not None:
                        self._leaders[(str(t.name), p.partition_index)] = address
        return self._leaders.get((topic, partition))

    async def coordinator(self, group: str) -> Address | None:
        known = self._coordinators.get(group)
        if known is not None:
            return known
        with contextlib.suppress(OSError, TimeoutError, ConnectionError,
                                 asyncio.IncompleteReadError):
            resp = await self._call(self.bootstrap, fc.FindCoordinatorRequest(key=group),
                                    _FIND_COORDINATOR_VERSION, fc.FindCoordinatorResponse)
            if resp.error_code == ErrorCode.NONE:
                self._coordinators[group] = (resp.host, resp.port)
        return self._coordinators.get(group)

    # -- requests ---------------------------------------------------------------------------------
    async def produce(self, topic: str, partition: int, batch: bytes | memoryview,
                      timeout_ms: int) -> int:
        """One batch to the partition's leader, acks=all: its error code."""
        address = await self.leader(topic, partition)
        if address is None:
            return ErrorCode.LEADER_NOT_AVAILABLE
        req = pm.ProduceRequest(acks=-1, timeout_ms=timeout_ms, topic_data=(
            pm.TopicProduceData(topic, (pm.PartitionProduceData(partition, batch),)),))
        code: int = ErrorCode.NETWORK_EXCEPTION
        with contextlib.suppress(OSError, TimeoutError, ConnectionError,
                                 asyncio.IncompleteReadError):
            resp = await self._call(address, req, _PRODUCE_VERSION, pm.ProduceResponse)
            code = resp.responses[0].partition_responses[0].error_code
        if code != ErrorCode.NONE:
            self._leaders.pop((topic, partition), None)  # asked again on the retry
        return code

    async def offset_commit(self, req: oc.OffsetCommitRequest) -> int:
        """The commit at the group's coordinator: its (first) error code."""
        code: int = ErrorCode.COORDINATOR_NOT_AVAILABLE
        address = await self.coordinator(req.group_id)
        if address is not None:
            with contextlib.suppress(OSError, TimeoutError, ConnectionError,
                                     asyncio.IncompleteReadError):
                resp = await self._call(address, req, _COMMIT_VERSION, oc.OffsetCommitResponse)
                code = resp.topics[0].partitions[0].error_code if resp.topics else code
        if code != ErrorCode.NONE:
            self._coordinators.pop(req.group_id, None)
        return code

    async def offset_fetch(self, req: of.OffsetFetchRequest) -> of.OffsetFetchResponse | None:
        """The committed offsets from the group's coordinator; None if it did not answer."""
        address = await self.coordinator(req.group_id)
        if address is None:
            return None
        with contextlib.suppress(OSError, TimeoutError, ConnectionError,
                                 asyncio.IncompleteReadError):
            resp: of.OffsetFetchResponse = await self._call(
                address, req, _OFFSET_FETCH_VERSION, of.OffsetFetchResponse)
            if resp.error_code in _COORDINATOR_MOVED:
                self._coordinators.pop(req.group_id, None)
                return None
            return resp
        self._coordinators.pop(req.group_id, None)
        return None

    async def fetch(self, topic: str, partition: int, offset: int, max_bytes: int
                    ) -> tuple[int, int, bytes]:
        """(error code, log start offset, records) read from the partition's leader at
        `offset` (read_uncommitted, no wait)."""
        address = await self.leader(topic, partition)
        if address is None:
            return ErrorCode.LEADER_NOT_AVAILABLE, -1, b""
        req = fm.FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, topics=(
            fm.FetchTopic(topic=topic, partitions=(fm.FetchPartition(
                partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes),)),))
        try:
            resp = await self._call(address, req, _FETCH_VERSION, fm.FetchResponse)
        except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            self._leaders.pop((topic, partition), None)
            return ErrorCode.NETWORK_EXCEPTION, -1, b""
        p = resp.responses[0].partitions[0] if resp.responses else None
        if p is None:
            return resp.error_code or ErrorCode.UNKNOWN_SERVER_ERROR, -1, b""
        if p.error_code in _MOVED:
            self._leaders.pop((topic, partition), None)
        return p.error_code, p.log_start_offset, bytes(p.records or b"")
