"""PeerViews' node liveness over real RPC servers on loopback: a peer that answers its pings is
online; one whose server stops is offline once silent `dead_after_s`, and online again at its
first answer after it returns; a node never watched, and the node itself, are never offline."""

from __future__ import annotations

import asyncio
import time

from redshank.actors.peer_views import PeerViews
from redshank.actors.rpc import RpcServer
from redshank.cluster.raft.types import NodeId


async def _until(what: str, probe: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        await asyncio.sleep(0.02)


def test_a_silent_peer_goes_offline_and_comes_back() -> None:
    async def run() -> None:
        mine, theirs = RpcServer("127.0.0.1", 0), RpcServer("127.0.0.1", 0)
        await mine.start()
        await theirs.start()
        port = theirs.address[1]
        me = PeerViews(NodeId(1), None, mine, ping_every_s=0.05, dead_after_s=0.4)
        peer = PeerViews(NodeId(2), None, theirs)
        me.start()
        peer.start()
        me.watch(lambda: {NodeId(1): mine.address, NodeId(2): ("127.0.0.1", port)})
        try:
            await asyncio.sleep(0.6)  # past the grace: answering all along
            assert me.offline([1, 2, 3]) == frozenset()
            await peer.close()
            await theirs.stop()
            await _until("peer offline", lambda: me.offline([1, 2, 3]) == {2})
            back = RpcServer("127.0.0.1", port)
            await back.start()
            peer = PeerViews(NodeId(2), None, back)
            peer.start()
            await _until("peer online again", lambda: not me.offline([2]))
            await peer.close()
            await back.stop()
        finally:
            await me.close()
            await mine.stop()

    asyncio.run(asyncio.wait_for(run(), 30))
