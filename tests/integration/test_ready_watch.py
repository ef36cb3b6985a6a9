"""The deployment readiness watcher counts every answer that is not ready (real HTTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.ready_watch import main


class Readiness:
    """What the fake service answers: ready, until `fail_after` requests have been served."""

    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after
        self.served = 0
        self.lock = threading.Lock()


@pytest.fixture
def service(request: pytest.FixtureRequest) -> Iterator[tuple[str, Readiness]]:
    """A /ready endpoint on a random loopback port, answering like the app's."""
    state = Readiness(fail_after=request.param)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.served += 1
                ready = state.served <= state.fail_after
            body = (
                {"status": "ok"} if ready else {"status": "unavailable", "checks": {"redis": "x"}}
            )
            payload = json.dumps(body).encode()
            self.send_response(200 if ready else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ready", state
    finally:
        server.shutdown()
        server.server_close()


def run_watch(url: str, tmp_path: Path, max_polls: int) -> tuple[int, dict]:
    code = main(
        [
            "--url",
            url,
            "--stop-file",
            str(tmp_path / "stop"),
            "--ready-file",
            str(tmp_path / "ready"),
            "--report",
            str(tmp_path / "report.json"),
            "--max-polls",
            str(max_polls),
            "--pause",
            "0",
        ]
    )
    return code, json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("service", [1000], indirect=True)
def test_every_answer_ready_passes(service: tuple[str, Readiness], tmp_path: Path) -> None:
    url, _ = service
    code, report = run_watch(url, tmp_path, max_polls=30)
    assert code == 0
    assert report["polls"] == {url: 30}
    assert report["not_ready"] == {url: 0}
    assert (tmp_path / "ready").exists()


@pytest.mark.parametrize("service", [5], indirect=True)
def test_one_answer_not_ready_fails_and_is_reported(
    service: tuple[str, Readiness], tmp_path: Path
) -> None:
    url, _ = service
    code, report = run_watch(url, tmp_path, max_polls=8)
    assert code == 1
    assert report["not_ready"] == {url: 3}
    assert report["failures"][0]["error"].startswith("HTTP 503")


def test_a_refused_connection_is_not_ready(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens there on the test machines.
    code, report = run_watch("http://127.0.0.1:9/ready", tmp_path, max_polls=2)
    assert code == 1
    assert report["not_ready"] == {"http://127.0.0.1:9/ready": 2}
    assert not (tmp_path / "ready").exists()


def test_stops_at_the_stop_file(tmp_path: Path) -> None:
    (tmp_path / "stop").write_text("stop\n", encoding="utf-8")
    code, report = run_watch("http://127.0.0.1:9/ready", tmp_path, max_polls=5)
    assert report["stopped_by"] == "stop file"
    assert report["polls"] == {"http://127.0.0.1:9/ready": 0}
    assert code == 1  # a watch that polled nothing proves nothing
