"""controller_backend.remove_stale_replicas: replica directories no replica names are renamed
(durably) then removed; kept ones, single-node partition directories and other files stay; what
an interrupted removal left (`.deleting`) goes too, even when the same replica is removed
again."""

from __future__ import annotations

import uuid
from pathlib import Path

from redshank.actors.controller_backend import DELETING_SUFFIX, remove_stale_replicas
from redshank.cluster.controller.replica_plan import is_replica_directory, replica_directory


def _dir(root: Path, name: str) -> None:
    (root / name).mkdir()
    (root / name / "00000000000000000000.log").write_bytes(b"x" * 10)


def test_stale_replicas_go_kept_ones_and_others_stay(tmp_path: Path) -> None:
    kept = replica_directory("t", 0, uuid.UUID(int=1))
    stale = replica_directory("t", 1, uuid.UUID(int=1))
    gone = replica_directory("old", 0, uuid.UUID(int=2))
    for name in (kept, stale, gone, "local-0"):
        _dir(tmp_path, name)
    _dir(tmp_path, gone + DELETING_SUFFIX)  # an earlier removal of the same name, interrupted
    (tmp_path / "notes.txt").write_text("not a directory")
    assert all(is_replica_directory(n) for n in (kept, stale, gone))
    assert not is_replica_directory("local-0") and not is_replica_directory(gone + ".deleting")
    assert remove_stale_replicas(str(tmp_path), frozenset({kept})) == sorted([stale, gone])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kept, "local-0", "notes.txt"])
    assert remove_stale_replicas(str(tmp_path), frozenset({kept})) == []
    assert remove_stale_replicas(str(tmp_path / "missing"), frozenset()) == []
