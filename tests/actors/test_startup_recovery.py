"""StartupRecovery: which directories a core counts, and how often it tells its progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redshank.actors.startup_recovery import StartupRecovery, owned_partition_dirs
from redshank.cluster.kafka.topic_table import assign_cores


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))


def test_owned_dirs_follow_the_core_assignment_and_skip_replica_dirs(tmp_path: Path) -> None:
    for name in ("t-0", "t-1", "t-2", "my-topic-10", "t-0-00000000deadbeef", "junk"):
        (tmp_path / name).mkdir()
    (tmp_path / "file-3").write_text("")
    cores = {c: {Path(d).name for d in owned_partition_dirs(str(tmp_path), c, 2)}
             for c in range(2)}
    assert cores[0] | cores[1] == {"t-0", "t-1", "t-2", "my-topic-10"}
    assert not cores[0] & cores[1]
    assert ("t-1" in cores[assign_cores("t", 2, 2)[1]])
    assert owned_partition_dirs(str(tmp_path / "missing"), 0, 1) == set()


def test_progress_every_tenth_or_two_seconds_then_one_summary() -> None:
    now = [0.0]
    log: Any = _Log()
    rec = StartupRecovery(log, [f"d{i}" for i in range(100)], clock=lambda: now[0])
    rec.start()
    for i in range(100):
        now[0] += 0.01
        rec.opened(f"d{i}", 1024 * 1024, 0.01)
    rec.opened("new-topic-0", 5, 0.1)  # created after start: not part of the recovery
    events = [e for e, _ in log.lines]
    assert events[0] == "recovery_started" and events[-1] == "recovery_done"
    progress = [kw["recovered"] for e, kw in log.lines if e == "recovery_progress"]
    assert progress == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert log.lines[-1][1] == {"partitions": 100, "mb": 100.0, "open_s": 1.0, "seconds": 1.0}
    slow: Any = _Log()
    now[0] = 100.0
    rec = StartupRecovery(slow, [f"d{i}" for i in range(1000)], clock=lambda: now[0])
    for i in range(50):
        now[0] = 100.0 + (i + 1) * 0.5  # two opens a second: a line every four
        rec.opened(f"d{i}", 0, 0.5)
    assert [kw["recovered"] for _e, kw in slow.lines] == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40,
                                                         44, 48]


def test_nothing_found_logs_nothing() -> None:
    log: Any = _Log()
    rec = StartupRecovery(log, [])
    rec.start()
    rec.opened("t-0", 1, 0.1)
    assert log.lines == []
