"""The fault-injecting file layer: faults follow the control file as it changes, only for the
matching paths, and every fdatasync of a match is logged with its outcome."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from redshank.storage import OsFiles, StorageIOError
from redshank.storage.fault_files import ENV, FaultFiles, FaultSpec, files_from_env


def _write(path: Path, spec: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec))
    tmp.replace(path)


def test_faults_follow_the_control_file(tmp_path: Path) -> None:
    control = tmp_path / "faults.json"
    events = tmp_path / "events"
    files = FaultFiles(OsFiles(), str(control))
    hit = files.open(str(tmp_path / "hit.log"), create=True)
    miss = files.open(str(tmp_path / "miss.log"), create=True)
    try:
        hit.pwrite([b"abc"], 0)  # no control file: no faults
        _write(control, {"match": "hit", "fail": {"pwrite": "ENOSPC", "fdatasync": "EIO"},
                         "events": str(events)})
        with pytest.raises(StorageIOError) as full:
            hit.pwrite([b"d"], 3)
        assert full.value.errno == errno.ENOSPC
        with pytest.raises(StorageIOError) as eio:
            hit.fdatasync()
        assert eio.value.errno == errno.EIO
        miss.pwrite([b"x"], 0)
        miss.fdatasync()  # not matched: neither failed nor logged
        _write(control, {"match": "hit", "events": str(events)})
        hit.fdatasync()
        control.unlink()
        hit.pwrite([b"d"], 3)
        assert hit.pread(4, 0) == b"abcd"
    finally:
        hit.close()
        miss.close()
    lines = [line.split() for line in events.read_text().splitlines()]
    assert [(op, outcome) for op, _s, _e, outcome, _p in lines] == [
        ("fdatasync", "EIO"), ("fdatasync", "ok")]
    assert all(int(start) <= int(end) for _op, start, end, _o, _p in lines)


def test_spec_rejects_unknown_operations_and_errnos() -> None:
    with pytest.raises(ValueError):
        FaultSpec.parse({"fail": {"chmod": "EIO"}})
    with pytest.raises(ValueError):
        FaultSpec.parse({"fail": {"pwrite": "ENOTANERRNO"}})
    assert FaultSpec.parse({"fail": {"pwrite": 28}}).fail == {"pwrite": errno.ENOSPC}


def test_brokers_use_the_fault_layer_only_when_asked(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert isinstance(files_from_env(), OsFiles)
    monkeypatch.setenv(ENV, str(tmp_path / "faults.json"))
    assert isinstance(files_from_env(), FaultFiles)
