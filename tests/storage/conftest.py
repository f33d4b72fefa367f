"""Storage test helpers: makes `storage_batches` (the batch builder) importable by the tests
here and by the crash tests' child processes, which run the script in this folder."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
