"""The fault lab for multi-node tests: a TCP fault proxy, a network-namespace lab, and a
Jepsen-style history checker that compares every acknowledged write with what is finally read.

Concern: putting faults between real processes and judging the outcome. It must not know the
broker's internals: nodes are addresses and processes, records are ids."""

from __future__ import annotations

from .fault_proxy import A_TO_B, B_TO_A, Direction, FaultProxy, ProxyMesh, ProxyStats
from .history import History, HistoryViolation, Kind, Report, Violation
from .netns import LabError, NetnsLab, netns_unavailable, require_netns, sweep_stale

__all__ = [
    "A_TO_B", "B_TO_A", "Direction", "FaultProxy", "History", "HistoryViolation", "Kind",
    "LabError", "NetnsLab", "ProxyMesh", "ProxyStats", "Report", "Violation",
    "netns_unavailable", "require_netns", "sweep_stale",
]
