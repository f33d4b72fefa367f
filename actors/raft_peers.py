"""Raft messages of one group between nodes, over the internal RPC: the outbound half (one
`RpcClient` per peer, one-way sends in order, dropped on error) and the inbound decoder.

Concern: bytes on the wire for `cluster/raft` messages (`cluster/raft/wire.py`), on the owner's
event loop. Raft retries everything it needs (appends on the next heartbeat response, votes on
the next election timeout), so a message that cannot leave now (peer down, in reconnect backoff,
send buffer full past the deadline, queue full) is dropped and counted, never retried here; a
slow peer thus costs a bounded queue, not memory. Messages to one peer leave in the order Raft
produced them (one sender task per peer).

    Raft Io.send --> RaftPeers.send --> queue[dst] --> sender task --> RpcClient.send (one-way)
    RpcServer handler(payload) --> decode_raft(payload) --> (group, Message) --> owner steps it

Must not know: what the group is for, the partition or controller, flushes, proposals.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping

import structlog

from redshank.actors.rpc import Backoff, RpcClient, RpcError
from redshank.cluster.raft.heartbeat_manager import GroupId
from redshank.cluster.raft.types import Message, NodeId
from redshank.cluster.raft.wire import decode_message, encode_message

__all__ = ["RaftPeers", "decode_raft"]

MAX_QUEUED = 1024  # messages per peer waiting to leave; older ones are dropped past it

_log = structlog.get_logger("redshank.raft_peers")


def decode_raft(payload: memoryview) -> tuple[GroupId, Message]:
    """One Raft message from an RPC payload. The payload's memory belongs to the transport, so
    it is copied first: the entries' batches are views of the copy (read-only, so the log that
    keeps them copies again before restamping). Raises `RaftWireError` on bad bytes."""
    return decode_message(bytes(payload))


class _Peer:
    def __init__(self, node: NodeId, client: RpcClient) -> None:
        self.node = node
        self.client = client
        self.queue: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class RaftPeers:
    """The outbound Raft messages of one group on one node (its owner's loop): created by the
    group's host with the peers' RPC addresses, ended by `close()` (which ends the sender tasks
    and closes the clients). `client(node)` is also the host's way to call a peer."""

    def __init__(self, group: GroupId, method: int, addresses: Mapping[NodeId, tuple[str, int]],
                 *, send_timeout_s: float = 1.0, connect_timeout_s: float = 0.5,
                 backoff_cap_s: float = 0.5, log: structlog.typing.FilteringBoundLogger | None
                 = None) -> None:
        self.group = group
        self.method = method
        self.send_timeout_s = send_timeout_s
        self.dropped = 0  # messages not sent (peer unreachable, queue full)
        self.sent = 0
        self.log = log or _log
        self._connect_timeout_s = connect_timeout_s
        self._backoff_cap_s = backoff_cap_s
        self._peers = {node: self._peer(node, address) for node, address in addresses.items()}
        self._addresses = dict(addresses)
        self._retired: list[asyncio.Task[None]] = []
        self._closed = False

    def _peer(self, node: NodeId, address: tuple[str, int]) -> _Peer:
        host, port = address
        return _Peer(node, RpcClient(host, port, connect_timeout_s=self._connect_timeout_s,
                                     default_timeout_s=self.send_timeout_s,
                                     backoff=Backoff(base_s=0.05, cap_s=self._backoff_cap_s)))

    def set_address(self, node: NodeId, address: tuple[str, int]) -> None:
        """Send to `node` at `address` from now on (a member that joined the group, or one
        that came back at another address); what was queued for its old address is dropped
        (Raft sends again)."""
        if self._closed or self._addresses.get(node) == address:
            return
        old = self._peers.pop(node, None)
        self._peers[node] = self._peer(node, address)
        self._addresses[node] = address
        if old is not None:
            self.dropped += len(old.queue)
            old.queue.clear()
            if old.task is not None:
                old.task.cancel()
            self._retired.append(asyncio.get_running_loop().create_task(old.client.close()))

    def client(self, node: NodeId) -> RpcClient | None:
        peer = self._peers.get(node)
        return None if peer is None else peer.client

    def send(self, messages: list[Message]) -> None:
        """Queue each message for its destination (unknown destinations are dropped)."""
        if self._closed:
            return
        for m in messages:
            peer = self._peers.get(m.dst)
            if peer is None:
                self.dropped += 1
                continue
            if len(peer.queue) >= MAX_QUEUED:
                peer.queue.popleft()
                self.dropped += 1
            peer.queue.append(b"".join(encode_message(self.group, m)))
            if peer.task is None:
                peer.task = asyncio.get_running_loop().create_task(self._sender(peer))
            peer.wake.set()

    async def _sender(self, peer: _Peer) -> None:
        while not self._closed:
            await peer.wake.wait()
            peer.wake.clear()
            while peer.queue and not self._closed:
                payload = peer.queue.popleft()
                try:
                    await peer.client.send(self.method, payload, timeout=self.send_timeout_s)
                    self.sent += 1
                except RpcError:
                    # Unreachable (refused, backoff, deadline): Raft sends again later. What is
                    # queued behind it is older than what Raft will send next: drop it too.
                    self.dropped += 1 + len(peer.queue)
                    peer.queue.clear()

    async def close(self) -> None:
        """End the sender tasks and close every client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._retired)
        for peer in self._peers.values():
            if peer.task is not None:
                peer.task.cancel()
                tasks.append(peer.task)
        if tasks:
            await asyncio.wait(tasks)
        for peer in self._peers.values():
            await peer.client.close()
