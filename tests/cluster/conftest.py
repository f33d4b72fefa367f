"""Cluster test helpers: makes the modules here importable by each other (the three-replica
hub of `test_partition_replicas` is shared by the partition tests)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
