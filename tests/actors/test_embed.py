"""The embedding API with real core processes: spawn, tell/ask from the program and across cores,
two-phase asks, the documented errors, live stats, a killed core, and the program's own end
(stopped, Ctrl-C, killed). One runtime serves the tests that leave it as they found it."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redshank.actors import embed
from redshank.actors.embed._agent import read_table
from redshank.actors.runtime.node_dir import NodeDir
from redshank.tools import actors_cmd

sys.path.insert(0, str(Path(__file__).parent))  # cores import embed_actors by module path
import embed_actors

pytestmark = pytest.mark.timeout(120)


def pid_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embed.Runtime]:
    with embed.Runtime(cores=2, node_dir=tmp_path_factory.mktemp("embed") / "node") as runtime:
        runtime.spawn(0, "echo", embed_actors.Echo)
        runtime.spawn(1, "echo", embed_actors.Echo)
        runtime.spawn(0, "relay", embed_actors.Relay)
        yield runtime


def test_tell_and_ask_from_the_program(rt: embed.Runtime) -> None:
    echo = rt.ref(1, "echo")
    assert echo.ask("where") == 1
    assert echo.ask({"a": [1, 2]}) == {"a": [1, 2]}
    assert echo.ask(b"raw") == b"raw"
    echo.tell("fire and forget")
    fut = echo.ask(42, block=False)
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(10) == 42


def test_tells_from_the_program_arrive_in_order_before_its_next_ask(rt: embed.Runtime) -> None:
    counter = rt.spawn(1, "counter", embed_actors.Counter)
    n = 20_000  # more than TELLS_IN_FLIGHT: the program waits for mailbox room on the way
    for i in range(n):
        counter.tell(i)
    assert counter.ask("count") == (n, 0)
    rt.stop_actor(1, "counter")


def test_actors_ask_and_tell_each_other_across_cores(rt: embed.Runtime) -> None:
    relay = rt.ref(0, "relay")
    assert relay.ask(("relay", 1, "echo", "where")) == 1  # core 0 asks core 1
    assert relay.ask(("relay", 0, "echo", "where")) == 0  # a local ref, same calls
    relay.ask(("tell", 1, "echo", "x"))


def test_an_actors_exception_reaches_the_asker(rt: embed.Runtime) -> None:
    with pytest.raises(ValueError, match="boom"):
        rt.ref(1, "echo").ask("boom")
    with pytest.raises(embed.ActorDeadError):
        rt.ref(1, "nobody").ask("hello")


def test_two_phase_ask_from_the_program(rt: embed.Runtime) -> None:
    rt.spawn(1, "owner", embed_actors.Owner)
    pairs = [rt.ref(1, "owner").ask_two_phase(i) for i in range(20)]
    sequenced = [s.result(10) for s, _ in pairs]
    acked = [a.result(10) for _, a in pairs]
    assert [v[2] for v in sequenced] == list(range(1, 21))  # sequenced in send order
    assert acked == [("acked", i, i + 1) for i in range(20)]
    rt.stop_actor(1, "owner")


def test_an_unpicklable_message_raises_at_the_call(rt: embed.Runtime) -> None:
    echo = rt.ref(1, "echo")
    with pytest.raises(embed.UnpicklableMessageError, match="another core"):
        echo.tell(lambda: 1)
    with pytest.raises(embed.UnpicklableMessageError):
        echo.ask({"lock": __import__("threading").Lock()})
    with pytest.raises(embed.UnpicklableMessageError):
        rt.spawn(1, "bad-args", embed_actors.Echo, lambda: 1)
    assert echo.ask("still fine") == "still fine"


def test_a_message_a_core_cannot_unpickle_fails_the_ask_not_the_core(rt: embed.Runtime) -> None:
    echo = rt.ref(1, "echo")
    generation = rt.generation(1)
    with pytest.raises(embed.UndecodableMessageError, match="parent_only"):
        echo.ask(embed_actors.module_here_only("parent_only").Thing())
    with pytest.raises(embed.UndecodableMessageError, match="core_only"):
        echo.ask("alien")  # the answer does not unpickle here
    assert echo.ask("still here") == "still here"
    assert rt.generation(1) == generation  # no core was restarted


def test_a_blocking_ask_on_a_cores_loop_raises_instead_of_freezing_it(
    rt: embed.Runtime,
) -> None:
    with pytest.raises(embed.LoopBlockingError):
        rt.ref(0, "relay").ask(("block", 1, "echo", "x"))
    assert rt.ref(0, "relay").ask(("relay", 1, "echo", "alive")) == "alive"


def test_spawn_errors_are_spawn_errors(rt: embed.Runtime) -> None:
    class Local(embed.LoopActor):
        pass

    with pytest.raises(embed.SpawnError, match="defined in a function"):
        rt.spawn(0, "local", Local)
    with pytest.raises(embed.SpawnError, match="not a LoopActor"):
        rt.spawn(0, "plain", embed_actors.NotAnActor)
    with pytest.raises(embed.SpawnError, match="already spawned"):
        rt.spawn(1, "echo", embed_actors.Echo)
    with pytest.raises(embed.SpawnError, match="constructor failed"):
        rt.spawn(1, "fails", embed_actors.Fails)
    with pytest.raises(ValueError):
        rt.spawn(2, "echo", embed_actors.Echo)  # core 2 is the program itself


def test_user_actors_show_up_in_redshank_actors(
    rt: embed.Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    rt.ref(1, "echo").ask("count me")

    def shown() -> bool:
        assert actors_cmd.main(["--node-dir", str(rt.node_dir), "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)
        rows = {(c["core"], a["name"]): a for c in stats["cores"] for a in c.get("actors", [])}
        return ((1, "echo") in rows and rows[(1, "echo")]["class"] == "Echo"
                and rows[(1, "echo")]["messages"] > 0 and (0, "relay") in rows)

    wait_for(shown, 10, "the user's actors in the stats")
    assert actors_cmd.main(["--node-dir", str(rt.node_dir)]) == 0
    table = capsys.readouterr().out
    assert "Relay" in table and f"core {rt.parent_core}" in table


def test_a_killed_core_fails_pending_asks_and_comes_back_with_its_actors(
    tmp_path: Path,
) -> None:
    with embed.Runtime(cores=2, node_dir=tmp_path / "node") as rt:
        silent = rt.spawn(1, "silent", embed_actors.Silent)
        echo = rt.spawn(1, "echo", embed_actors.Echo)
        assert echo.ask("before") == "before"
        pending = silent.ask("never answered", block=False)
        pid = rt.pid(1)
        assert pid is not None and rt.generation(1) == 1
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(embed.CoreDiedError) as info:
            pending.result(30)
        assert info.value.core == 1
        rt.wait_ready(30, core=1)
        assert rt.generation(1) == 2 and rt.pid(1) != pid
        assert echo.ask("after") == "after"  # spawned again by the restarted core
        assert rt.ref(1, "silent").ask("x", block=False).done() is False


def test_a_stopped_runtime_refuses_calls_and_leaves_nothing_behind(tmp_path: Path) -> None:
    rt = embed.Runtime(cores=1, node_dir=tmp_path / "node").start()
    echo = rt.spawn(0, "echo", embed_actors.Echo)
    pid = rt.pid(0)
    rt.stop()
    rt.stop()  # idempotent
    assert pid is not None and pid_gone(pid)
    assert NodeDir(tmp_path / "node").segments() == []
    with pytest.raises(embed.RuntimeStoppedError):
        echo.ask("x")
    with pytest.raises(embed.NotOnACoreError):
        embed.ref(0, "echo")


_PROGRAM = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    from redshank.actors import embed
    import embed_actors

    if __name__ == "__main__":
        with embed.Runtime(cores=2, node_dir={node!r}) as rt:
            rt.spawn(1, "echo", embed_actors.Echo)
            print(json.dumps([rt.pid(0), rt.pid(1)]), flush=True)
            while True:
                rt.ref(1, "echo").ask("busy")
                time.sleep(0.01)
""")


def _start_program(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "program.py"
    script.write_text(_PROGRAM.format(tests=str(Path(__file__).parent),
                                      node=str(tmp_path / "node")))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    pids: list[int] = json.loads(line)
    return proc, pids


def test_ctrl_c_stops_the_cores_in_order(tmp_path: Path) -> None:
    proc, pids = _start_program(tmp_path)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in err
    assert all(pid_gone(p) for p in pids)
    assert NodeDir(tmp_path / "node").segments() == []  # stopped cleanly, not killed


def test_cores_die_with_a_killed_program(tmp_path: Path) -> None:
    proc, pids = _start_program(tmp_path)
    proc.kill()
    proc.wait(10)
    wait_for(lambda: all(pid_gone(p) for p in pids), 10, "the cores to die with the program")
    node = NodeDir(tmp_path / "node")
    assert node.segments() != []  # a killed program cannot clean up...
    with embed.Runtime(cores=1, node_dir=tmp_path / "node"):
        pass  # ...the next runtime on its directory does
    assert node.segments() == []


def test_a_killed_programs_temporary_node_is_swept_by_the_next_runtime(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent("""
        import os, signal
        from redshank.actors import embed

        if __name__ == "__main__":
            rt = embed.Runtime(cores=1).start()
            print(rt.node_dir, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env={**os.environ})
    assert proc.returncode == -9, proc.stderr
    left = NodeDir(proc.stdout.strip())  # its lock died with it (a flock)
    assert left.segments() != []
    with embed.Runtime(cores=1) as rt:
        assert rt.node_dir != left.path
    assert not left.path.exists() and left.segments() == []


def test_one_runtime_per_node_dir(rt: embed.Runtime) -> None:
    table = read_table(rt.node_dir)
    assert {(e.core, e.name) for e in table} >= {(0, "echo"), (1, "echo"), (0, "relay")}
    with pytest.raises(embed.NodeBusyError):
        embed.Runtime(cores=1, node_dir=rt.node_dir).start()
    assert read_table(rt.node_dir) == table  # what a restarted core respawns is untouched
    assert rt.ref(1, "echo").ask("unharmed") == "unharmed"


def test_a_runtime_starts_again_after_a_stop(tmp_path: Path) -> None:
    rt = embed.Runtime(cores=1, node_dir=tmp_path / "node")
    for round_ in range(2):
        with rt:
            echo = rt.spawn(0, "echo", embed_actors.Echo)  # the name is free again
            echo.tell("x")
            assert echo.ask(round_) == round_
