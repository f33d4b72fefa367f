"""Invariant checks of the controller (Raft group 0) under the simulator, on top of the Raft and
Kafka ones `checkers.py` runs on the same group.

Checked: state agreement (any two nodes, or one node before and after a restart, that applied
the same number of commands hold byte-identical `ControllerStm.snapshot()`s, and a restored
snapshot is the state applied up to its index); results agree (the command applied at an index,
and its `Applied`, are the same on every node and at every re-application after a restart); no
acked proposal lost (a proposal answered to its proposer is the command at the index it was
answered from, and at the end every node applied past it and holds its batch at that offset);
producer ids unique (no two `AllocateProducerIds` blocks handed out at different indexes
overlap). Violations are appended to the group's `Checker` (one list per run).

Must not drive the simulation, nor know how the commands were chosen: it only observes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from redshank.cluster.controller import Applied, Command
from redshank.cluster.raft.sim.checkers import Checker
from redshank.cluster.raft.types import NodeId


def state_digest(snapshot: bytes) -> bytes:
    return hashlib.blake2b(snapshot, digest_size=16).digest()


def _describe(cmd: Command) -> str:
    text = repr(cmd)
    return text if len(text) <= 120 else text[:117] + "..."


class ControllerChecker:
    def __init__(self, raft: Checker) -> None:
        self.raft = raft  # where violations go (with the run's time)
        self.results: dict[int, tuple[Command, Applied, NodeId]] = {}  # index -> first applied
        self.states: dict[int, tuple[bytes, NodeId]] = {}  # index -> state digest after it
        self.blocks: list[tuple[range, int]] = []  # producer-id blocks and their indexes
        self.acked: dict[int, Command] = {}  # index -> the proposal answered from it
        self.applies = 0

    def fail(self, what: str) -> None:
        self.raft.fail(what)

    def applied(self, node: NodeId, index: int, command: Command, result: Applied,
                state: bytes) -> None:
        """`node` applied `command` at `index` with `result`, reaching state digest `state`."""
        self.applies += 1
        first = self.results.get(index)
        if first is None:
            self.results[index] = (command, result, node)
            if result.producer_ids is not None:
                self._new_block(index, result.producer_ids)
        elif first[0] != command:
            self.fail(f"controller log divergence: node {node} applied {_describe(command)} at "
                      f"index {index}, node {first[2]} applied {_describe(first[0])}")
        elif first[1] != result:
            self.fail(f"controller results disagree at index {index} ({_describe(command)}): "
                      f"node {node} got {result}, node {first[2]} got {first[1]}")
        self._state(node, index, state, "after applying")

    def restored(self, node: NodeId, index: int, state: bytes) -> None:
        """`node` restarted from a snapshot of its state after `index` commands."""
        self._state(node, index, state, "restored from its snapshot")

    def _state(self, node: NodeId, index: int, state: bytes, how: str) -> None:
        seen = self.states.setdefault(index, (state, node))
        if seen[0] != state:
            self.fail(f"controller state agreement: node {node} {how} {index} commands holds "
                      f"state {state.hex()[:12]}, node {seen[1]} held {seen[0].hex()[:12]}")

    def _new_block(self, index: int, block: range) -> None:
        for other, at in self.blocks:
            if block.start < other.stop and other.start < block.stop:
                self.fail(f"producer ids reused: block [{block.start}, {block.stop}) at index "
                          f"{index} overlaps [{other.start}, {other.stop}) at index {at}")
                break
        self.blocks.append((block, index))

    def answered(self, node: NodeId, offset: int, command: Command, result: Applied) -> None:
        """`node`'s proposal of `command` was answered with `result`, applied at `offset`."""
        index = offset + 1
        first = self.results.get(index)
        if first is None or first[0] != command or first[1] != result:
            got = "nothing" if first is None else f"{_describe(first[0])} -> {first[1]}"
            self.fail(f"acked proposal: node {node} was answered {result} for "
                      f"{_describe(command)} at offset {offset}, where {got} was applied")
        self.acked.setdefault(index, command)

    def final(self, applied: Mapping[NodeId, int], states: Mapping[NodeId, bytes],
              at: Mapping[NodeId, Mapping[int, Command | None]]) -> None:
        """The end of a healed run: per node, commands applied, its state digest, and the
        command its log holds at each acked proposal's index."""
        if len(set(applied.values())) != 1 or len(set(states.values())) != 1:
            self.fail(f"controller state agreement at the end: applied {dict(applied)}, states "
                      f"{ {n: s.hex()[:12] for n, s in states.items()} }")
        for node, count in applied.items():
            for index, command in sorted(self.acked.items()):
                if index > count or at[node].get(index) != command:
                    self.fail(f"acked proposal lost: {_describe(command)} answered at offset "
                              f"{index - 1} is not applied there on node {node} (applied "
                              f"{count}, log holds {at[node].get(index)!r})")
                    break
