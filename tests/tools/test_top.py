"""`redshank top --once/--count` against a node's directory and against an admin API's
`/v1/actors` (the same JSON as `read_node_stats`; here a stdlib HTTP server serves a real node's
stats, standing for the node's admin server), and its errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from redshank.actors.runtime import testkit
from redshank.actors.runtime.node_stats import read_node_stats
from redshank.actors.runtime.supervisor import Supervisor
from redshank.tools import top

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("top") / "node"
    sup = Supervisor(path, 2, testkit.basic_setup)
    sup.start()
    try:
        sup.wait_ready(60)
        deadline = time.monotonic() + 30
        while not all(c.get("actors") for c in read_node_stats(path)["cores"]):
            assert time.monotonic() < deadline
            sup.poll(0.1)
        yield path
    finally:
        sup.stop()


def _serve(node: Path) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/actors":
                self.send_error(404)
                return
            body = json.dumps(read_node_stats(node)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _view(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert top.main([*argv, "--interval", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "redshank top" in out and "actors (busiest first" in out
    return out


def test_once_from_the_node_dir(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _view(capsys, "--node-dir", str(node), "--once", "--sort", "handler")
    assert out.count("redshank top") == 1 and "by handler" in out
    assert "echo" in out and "stats" in out  # testkit's actors
    assert "mailboxes (ring from core to peer)" in out and "%" in out  # capacity known


def test_count_from_the_admin_api(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, url = _serve(node)
    try:
        out = _view(capsys, "--admin-url", url + "/", "--count", "2", "--sort", "depth")
    finally:
        server.shutdown()
        server.server_close()
    assert out.count("redshank top") == 2 and "by depth" in out and "echo" in out


def test_unreachable_or_down_is_one_line_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, url = _serve(tmp_path)
    server.shutdown()
    server.server_close()  # nothing listens there any more
    assert top.main(["--admin-url", url, "--once"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"redshank top: cannot reach the admin API at {url}/v1/actors")
    assert err.count("\n") == 1
    assert top.main(["--node-dir", str(tmp_path / "none"), "--once"]) == 1
    assert capsys.readouterr().err == (
        f"redshank top: no running node in {tmp_path / 'none'} (no such directory)\n")
