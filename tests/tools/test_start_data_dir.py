"""`redshank start` with a data directory it cannot use: one line on stderr, exit 2, no
traceback (as for a port in use); more cores than CPUs: a warning, not a refusal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from redshank.tools import start

pytestmark = pytest.mark.timeout(60)


def _refused(data_dir: Path | str, capsys: pytest.CaptureFixture[str]) -> str:
    assert start.main(["--kafka-addr", "127.0.0.1:0", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_a_file_in_the_way(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("")
    assert _refused(tmp_path / "f", capsys) == (
        f"redshank start: --data-dir {tmp_path / 'f'}: not a directory (a file is in the way)")


def test_a_parent_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("")
    assert _refused(tmp_path / "f" / "a" / "b", capsys) == (
        f"redshank start: --data-dir {tmp_path / 'f' / 'a' / 'b'}: cannot create or write it: "
        f"Not a directory ({tmp_path / 'f'} is a file)")


def test_a_parent_that_cannot_be_created(capsys: pytest.CaptureFixture[str]) -> None:
    # /proc takes no new directories, not even from root.
    assert _refused("/proc/redshank-no-such/data", capsys) == (
        "redshank start: --data-dir /proc/redshank-no-such/data: cannot create or write it: "
        "No such file or directory (/proc/redshank-no-such)")


def test_a_read_only_filesystem(tmp_path: Path) -> None:
    """A tmpfs mounted read-only in a mount namespace of its own (root ignores a 0555 mode)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    mount = f"mount -t tmpfs -o ro,size=1m tmpfs {ro}"
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "sh", "-c", mount], capture_output=True, timeout=10).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs unshare -m and mount rights)")
    code = ("import sys; from redshank.tools import start\n"
            "for d in sys.argv[1:]:\n"
            "    print(start.main(['--kafka-addr', '127.0.0.1:0', '--data-dir', d]))")
    script = f'{mount} && exec {sys.executable} -c "$0" {ro} {ro / "data"}'
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, code], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ))
    assert done.stdout.split() == ["2", "2"], done.stderr
    assert done.stderr.splitlines() == [
        f"redshank start: --data-dir {d}: cannot create or write it: Read-only file system"
        for d in (ro, ro / "data")]


def test_more_cores_than_cpus_is_a_warning() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert start.cores_warning(cpus) is None
    assert start.cores_warning(cpus + 6) == {"cores": cpus + 6, "cpus": cpus}


def test_log_flags() -> None:
    args = start._parser().parse_args(["--log-format", "console", "--log-level", "warning"])
    assert (args.log_format, args.log_level) == ("console", "warning")
    with pytest.raises(SystemExit):
        start._parser().parse_args(["--log-format", "xml"])
