"""WriteTxnMarkers (27): COMMIT/ABORT control batches appended to the partitions of a transaction.

CONTRACT STUB (transactions work in progress): the partition side implements and registers
`write_txn_markers` as the request path of API 27; the transaction host (actors/txn_host.py)
calls the same function in-process for the partitions this node leads. A partition this node
does not lead answers NOT_LEADER_OR_FOLLOWER; a `__consumer_offsets` partition is handed to its
group host (`frontend.groups.write_txn_marker`), which appends the marker and settles the
transaction's pending offsets.
"""

from __future__ import annotations

from redshank.actors.frontend.services import CoreServices
from redshank.protocol import messages as m

__all__ = ["write_txn_markers"]


async def write_txn_markers(core: CoreServices,
                            request: m.write_txn_markers.WriteTxnMarkersRequest, version: int
                            ) -> m.write_txn_markers.WriteTxnMarkersResponse:
    raise NotImplementedError("contract stub: the partition side of transactions implements it")
