"""ARCHITECTURE.md section 1: a layer imports only layers below it, plus what each must not know.

Parses every module's imports (including imports inside functions) and fails on a violation.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("protocol", "storage", "cluster", "actors", "tools")

# Standard-library and third-party modules a layer must not touch.
SANS_IO = {"socket", "asyncio", "selectors", "ssl", "threading", "multiprocessing",
           "multiprocess", "concurrent", "posix_ipc", "mmap", "subprocess", "signal", "uvloop",
           "pykka"}
FORBIDDEN: dict[str, set[str]] = {
    # protocol knows no sockets, files or clocks, and never logs.
    "protocol": SANS_IO | {"os", "io", "time", "logging", "structlog", "pathlib", "tempfile"},
    # storage knows nothing of sockets, actors or event loops.
    "storage": SANS_IO - {"threading", "mmap"},
    # cluster state machines are driven by method calls: no asyncio, threads, processes, shm.
    "cluster": SANS_IO,
}
# Raft reads no clock and no files either (its randomness is a seeded random.Random).
FORBIDDEN_SUBTREE = {("cluster", "raft"): SANS_IO | {"time", "os", "io", "pathlib"}}


def _modules(root: Path) -> Iterator[tuple[Path, str, tuple[str, ...]]]:
    for layer in ORDER:
        for path in sorted((root / layer).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            yield path, layer, parts


def _imports(path: Path, parts: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """Yield (line, absolute module name) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    package = ("redshank", *parts) if is_pkg else ("redshank", *parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ((node.module,) if node.module else ()))
            else:
                mod = node.module or ""
            yield node.lineno, mod
            for alias in node.names:
                yield node.lineno, f"{mod}.{alias.name}"


def _violations(root: Path = ROOT) -> list[str]:
    found: list[str] = []
    for path, layer, parts in _modules(root):
        rel = path.relative_to(root)
        allowed_layers = set(ORDER[: ORDER.index(layer) + 1])
        runtime = parts[:2] == ("actors", "runtime")
        banned = set(FORBIDDEN.get(layer, set()))
        for subtree, extra in FORBIDDEN_SUBTREE.items():
            if parts[: len(subtree)] == subtree:
                banned |= extra
        for line, mod in _imports(path, parts):
            top = mod.split(".")[0]
            if top in banned:
                found.append(f"{rel}:{line} {layer} must not import {mod}")
            if top != "redshank":
                continue
            segs = mod.split(".")
            if len(segs) < 2:
                continue
            target = segs[1]
            if target in ORDER and target not in allowed_layers:
                found.append(f"{rel}:{line} {layer} imports higher layer {mod}")
            if runtime and segs[1:3] != ["actors", "runtime"]:
                found.append(f"{rel}:{line} actors/runtime imports project code {mod}")
    return found


def test_layers_import_only_layers_below_them() -> None:
    assert _violations() == []


def _plant(root: Path, rel: str, source: str) -> None:
    for name in ORDER:
        (root / name).mkdir(exist_ok=True)
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("protocol/bad.py", "import socket\n", "must not import socket"),
        ("protocol/bad.py", "import structlog\n", "must not import structlog"),
        ("storage/bad.py", "from redshank.cluster import raft\n", "imports higher layer"),
        ("storage/sub/bad.py", "from ...cluster import raft\n", "imports higher layer"),
        ("cluster/bad.py", "import asyncio\n", "must not import asyncio"),
        ("cluster/raft/bad.py", "import time\n", "must not import time"),
        ("actors/runtime/bad.py", "from redshank.storage import log\n", "imports project code"),
        ("actors/runtime/bad.py", "from .. import kafka_session\n", "imports project code"),
    ],
)
def test_checker_catches_violations(tmp_path: Path, rel: str, source: str, expected: str) -> None:
    # The checker must not pass vacuously: plant a bad module in a copy of the layout.
    _plant(tmp_path, rel, source)
    assert any(expected in v for v in _violations(tmp_path)), _violations(tmp_path)


def test_checker_allows_downward_imports(tmp_path: Path) -> None:
    _plant(tmp_path, "cluster/ok.py", "from redshank.storage import log\nimport random\n")
    _plant(tmp_path, "actors/runtime/ok.py", "from redshank.actors.runtime import mailbox\n")
    assert _violations(tmp_path) == []


def _actor_cycles(root: Path = ROOT) -> list[list[str]]:
    """Import cycles among the modules of actors/ outside the runtime (imports inside functions
    count: deferring one hides a cycle from Python, not from the design). Each cycle is listed
    once, as the modules along it."""
    modules: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for path, layer, parts in _modules(root):
        if layer == "actors" and parts[:2] != ("actors", "runtime"):
            modules["redshank." + ".".join(parts)] = (path, parts)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, parts) in modules.items():
        for _line, mod in _imports(path, parts):
            segs = mod.split(".")
            # The longest imported name that is one of these modules (a name imported from a
            # module, `from x.y import z`, resolves to x.y); a parent package is no edge.
            for end in range(len(segs), 2, -1):
                target = ".".join(segs[:end])
                if target in modules:
                    if target != name and not name.startswith(target + "."):
                        graph[name].add(target)
                    break
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return cycles


def test_actors_outside_the_runtime_have_no_import_cycle() -> None:
    assert _actor_cycles() == []


def test_cycle_checker_catches_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    _plant(tmp_path, "actors/a.py", "from redshank.actors.b import B\n")
    _plant(tmp_path, "actors/b.py",
           "def setup() -> None:\n    from redshank.actors import a\n")
    _plant(tmp_path, "actors/c.py", "from redshank.actors.a import A\n")
    assert _actor_cycles(tmp_path) == [["redshank.actors.a", "redshank.actors.b"]]
