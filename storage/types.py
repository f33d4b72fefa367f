"""Ids that are easy to mix up in the log API: offsets and terms."""

from __future__ import annotations

from typing import NewType

__all__ = ["Offset", "Term"]

# A Kafka offset: the position of a record in the partition log.
Offset = NewType("Offset", int)
# A Raft term (Kafka's leader epoch): stored per batch, needed for Raft's log matching.
Term = NewType("Term", int)
