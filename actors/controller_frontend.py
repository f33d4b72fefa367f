"""Proposals to the controller (Raft group 0) from any node: append on the leader, wherever it is.

Concern: getting one command batch into group 0's log and its result back to the caller, on the
loop of the node's controller host. The batch is appended on the leader: here if this node
leads, else forwarded to the leader's controller (`ControllerMethod.PROPOSE`, with a deadline);
a NOT_LEADER (or an unreachable leader) is retried once a leader change is heard of (or after a
short wait), within the proposal's whole deadline. While this node knows no leader (a node not
yet in group 0 hears no leader at all), each attempt asks the next voter, then the leader that
voter names. The caller's answer is what its own node's
`ControllerStm` made of the batch when it applied it (matched by `BatchId`), the same on every
node, so a leader's reply only says where the batch went, never what it did.

    propose(cmd) --> encode (timestamp unique per node) --> watch(batch id)
      +--> leader here?  host.append_here(batch)          --+
      +--> leader there? call PROPOSE(batch) on the leader --+--> APPENDED at offset o
      <-- Applied, when this node applies the batch  <-- or: something else applied at o, or
                                                          resend_after_s passed: send it again

A batch sent again may commit twice; the second copy is decided again at apply (a create of an
existing topic is refused), so that is safe, and the caller gets the first copy's result.
Must not know: Raft, the partition, flushes (the host does those).
"""

from __future__ import annotations

import asyncio
import enum
import time
from typing import Any, Protocol

import structlog

from redshank.actors.raft_peers import RaftPeers
from redshank.actors.rpc import RpcError
from redshank.cluster.controller import Applied, Command, encode_command
from redshank.cluster.controller.controller_log import (
    ControllerLog,
    ProposeReply,
    ProposeStatus,
    batch_id,
)
from redshank.cluster.raft.types import NO_NODE, NodeId
from redshank.protocol.errors import DecodeError

__all__ = ["ControllerFrontend", "ControllerMethod", "ProposeFailed"]

NO_LEADER_WAIT_S = 0.2  # between attempts while no leader is known or it refuses


class ControllerMethod(enum.IntEnum):
    """RPC method ids of the controller (a node's core 0 serves them)."""

    RAFT = 0x0100  # one-way: one Raft message of group 0 (`cluster/raft/wire.py`)
    PROPOSE = 0x0101  # call: a command batch -> `ProposeReply` (appended on the leader, or not)
    APPLIED = 0x0102  # call: b"" -> int64 commands the leader applied (b"": not the leader)


class ProposeFailed(Exception):
    """A proposal not applied within its deadline (no leader reachable, or no quorum), refused
    as no command, or cut short by the host closing. It may still be applied later."""


class ControllerSeam(Protocol):
    """What the frontend needs of its controller host."""

    node: NodeId
    voters: frozenset[NodeId]
    clog: ControllerLog
    peers: RaftPeers

    @property
    def leader(self) -> NodeId: ...
    @property
    def closed(self) -> bool: ...
    async def append_here(self, batch: bytes) -> ProposeReply: ...
    def leader_future(self) -> asyncio.Future[None]: ...
    def applied_future(self, count: int) -> asyncio.Future[None]: ...


class ControllerFrontend:
    """The proposing side of one node's controller, on its host's loop: created by the
    `ControllerHost`, which it lives and ends with."""

    def __init__(self, host: ControllerSeam, propose_timeout_s: float, forward_timeout_s: float,
                 resend_after_s: float) -> None:
        self.host = host
        self.propose_timeout_s = propose_timeout_s
        self.forward_timeout_s = forward_timeout_s
        self.resend_after_s = resend_after_s
        self.resent = 0  # batches sent again (lost to a leader change, or slow)
        self.log = structlog.get_logger("redshank.controller").bind(node=int(host.node))
        self._last_ms = 0
        self._probe = 0  # the voter the next attempt without a known leader asks

    async def propose(self, command: Command, *, timeout: float | None = None) -> Applied:
        """See `ControllerHost.propose`."""
        batch = encode_command(command, timestamp_ms=self._unique_ms())
        bid = batch_id(batch)
        result: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        clog = self.host.clog
        clog.watch(bid, result)
        t = self.propose_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(t):
                while True:
                    reply = await self._append_anywhere(batch)
                    if reply.status == ProposeStatus.BAD_BATCH:
                        raise ProposeFailed("the leader refused the batch as no command")
                    if await self._outcome(result, reply.offset):
                        return result.result()
                    self.resent += 1
                    self.log.debug("proposal_resent", offset=reply.offset)
        except TimeoutError:
            raise ProposeFailed(f"not applied within {t:g} s") from None
        finally:
            clog.unwatch(bid, result)

    async def _outcome(self, result: asyncio.Future[Applied], offset: int) -> bool:
        """Wait until the batch appended at `offset` is applied (True), or is known lost
        (something else was applied there) or the resend time passed (False)."""
        if result.done():
            return True
        passed = self.host.applied_future(offset + 1)
        try:
            either: list[asyncio.Future[Any]] = [result, passed]
            await asyncio.wait(either, timeout=self.resend_after_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            passed.cancel()
        return result.done()

    async def _append_anywhere(self, batch: bytes) -> ProposeReply:
        """Append `batch` on the leader: here, or forwarded; tried again after a leader change
        (within the caller's deadline)."""
        host = self.host
        while True:
            if host.closed:
                raise ProposeFailed("controller host closed")
            lead = host.leader
            if lead == host.node:
                reply = await host.append_here(batch)
            elif lead == NO_NODE:
                reply = await self._forward_to_a_voter(batch)
            else:
                reply = await self._forward(lead, batch)
            if reply.status != ProposeStatus.NOT_LEADER:
                return reply
            # Wait for news of a leader (or a short while: the one named may not know yet).
            news = host.leader_future()
            await asyncio.wait([news], timeout=NO_LEADER_WAIT_S)
            news.cancel()

    async def _forward_to_a_voter(self, batch: bytes) -> ProposeReply:
        """No leader known here: ask the next voter, and the leader it names, if any."""
        others = sorted(n for n in self.host.voters if n != self.host.node)
        if not others:
            return ProposeReply(ProposeStatus.NOT_LEADER)
        voter = others[self._probe % len(others)]
        self._probe += 1
        reply = await self._forward(voter, batch)
        if reply.status == ProposeStatus.NOT_LEADER and reply.leader not in (
                NO_NODE, voter, self.host.node):
            reply = await self._forward(NodeId(reply.leader), batch)
        return reply

    async def _forward(self, lead: NodeId, batch: bytes) -> ProposeReply:
        client = self.host.peers.client(lead)
        if client is None:
            return ProposeReply(ProposeStatus.NOT_LEADER)
        try:
            raw = await client.call(ControllerMethod.PROPOSE, batch,
                                    timeout=self.forward_timeout_s)
            return ProposeReply.decode(raw)
        except (RpcError, DecodeError) as exc:
            self.log.debug("propose_forward_failed", leader=int(lead), error=str(exc))
            return ProposeReply(ProposeStatus.NOT_LEADER)

    def _unique_ms(self) -> int:
        """A timestamp for a batch, unique per node (it is part of the batch's identity)."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms
