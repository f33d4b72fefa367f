"""The wheel holds the `redshank` package only (the layer folders map to redshank.<layer>, no
top-level `storage`, `tools`, ...), with every layer and the generated messages in it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(240)
def test_wheel_contains_the_redshank_package_only(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True, cwd=tmp_path, timeout=200)
    [wheel] = tmp_path.glob("redshank-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"redshank", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for layer in ("actors", "storage", "protocol", "cluster", "tools"):
        assert f"redshank/{layer}/__init__.py" in names
    assert "redshank/protocol/messages/produce.py" in names
    assert "redshank/actors/runtime/ring.py" in names
