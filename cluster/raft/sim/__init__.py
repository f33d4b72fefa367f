"""Deterministic simulation of Raft groups: virtual time, faulty network and disks, checkers."""

from redshank.cluster.raft.sim.checkers import Checker
from redshank.cluster.raft.sim.simulator import FaultParams, SimResult, Simulator, run_seed

__all__ = ["Checker", "FaultParams", "SimResult", "Simulator", "run_seed"]
