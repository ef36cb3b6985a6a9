"""What a real gunicorn, configured as deployed, does with big requests that nginx passes on.

nginx accepts bodies up to ``nginx_client_max_body_size`` (1 MiB) and request lines up to
8000 bytes, and relays them to gunicorn over kept-alive connections. The app refuses bodies
above 128 KiB (413) and answers many requests without reading their body (401, 404): the
connection must survive that, or nginx reports "upstream prematurely closed connection" and
the client gets 502 instead of the app's answer. And gunicorn must accept every request line
nginx relays, or the client gets gunicorn's own 414 HTML page instead of the API's JSON.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.gunicorn_support import REPO, start_gunicorn
from tests.waiting import listening, stop, wait_for

pytestmark = pytest.mark.integration

TEMPLATE = REPO / "roles/app/templates/etc/chatbot/gunicorn.conf.py.j2"
SOCKET_TIMEOUT = 30.0
# The longest request line nginx relays (its URI limit, roles/nginx) plus the method and protocol.
NGINX_MAX_URI = 8000


def _deployed_limits() -> str:
    """Return the deployed configuration's request limit lines (``limit_request_*``)."""
    lines = re.findall(r"^limit_request_\w+ = .+$", TEMPLATE.read_text(), flags=re.MULTILINE)
    return "\n".join(lines)


@pytest.fixture
def gunicorn_port(
    tmp_path: Path, subprocess_env: dict[str, str], migrated_database: None, unused_port: int
) -> Iterator[int]:
    config = (
        f'bind = "127.0.0.1:{unused_port}"\n'
        'wsgi_app = "webapp.wsgi.auth:app"\n'
        'worker_class = "gthread"\nworkers = 1\nthreads = 4\nkeepalive = 75\n'
        'accesslog = None\nerrorlog = "-"\n' + _deployed_limits() + "\n"
    )
    log = tmp_path / "gunicorn.log"
    proc = start_gunicorn(tmp_path, config, subprocess_env, log)
    try:
        wait_for(
            lambda: listening(unused_port),
            "gunicorn listening",
            abandon=lambda: (
                None if proc.poll() is None else f"exit {proc.returncode}:\n{log.read_text()}"
            ),
            interval=0.1,
        )
        yield unused_port
    finally:
        # Only the master this fixture started, by its PID; it stops its own workers.
        stop(proc)


class Connection:
    """One kept-alive HTTP/1.1 connection, as nginx holds to an upstream."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, target: str, body: bytes = b"", **headers: str) -> bytes:
        head = f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n"
        head += "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)
        return self.response()

    def response(self) -> bytes:
        """Read one response (with a Content-Length body) and return ``status line + body``."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head.split(b"\r\n", 1)[0] + b"\n" + body

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data


@pytest.fixture
def connection(gunicorn_port: int) -> Iterator[Connection]:
    conn = Connection(gunicorn_port)
    try:
        yield conn
    finally:
        conn.close()


def _json_error(reply: bytes, status: int) -> dict:
    status_line, body = reply.split(b"\n", 1)
    assert status_line.split()[1] == str(status).encode(), reply[:300]
    return json.loads(body)["error"]


@pytest.mark.parametrize("size", [129 * 1024, 300 * 1024, 1024 * 1024])
@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("/api/v1/auth/login", 413, "payload_too_large"),  # refused on Content-Length
        ("/api/v1/auth/me", 405, "method_not_allowed"),  # refused before the body is read
        ("/api/v1/auth/no-such-route", 404, "not_found"),
    ],
)
def test_a_body_the_app_did_not_read_leaves_the_connection_usable(
    connection, size, target, status, code
):
    body = b'{"email": "' + b"x" * size + b'"}'
    assert _json_error(connection.request("POST", target, body), status)["code"] == code
    # The same connection serves the next request: nothing of the body was left on it.
    reply = connection.request("GET", "/health")
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert json.loads(reply.split(b"\n", 1)[1])["status"] == "ok"


def test_every_request_line_nginx_relays_reaches_the_app(connection):
    # The longest URI nginx passes on, in a request line gunicorn must accept: the answer is the
    # app's (JSON), not gunicorn's 414 page.
    target = "/api/v1/auth/no-such-route?q="
    target += "a" * (NGINX_MAX_URI - len(target))
    reply = connection.request("GET", target)
    assert _json_error(reply, 404)["code"] == "not_found"
    headers = {f"X-Extra-{i}": "v" * 100 for i in range(150)}  # more than gunicorn's default 100
    headers["X-Long"] = "h" * 8000
    reply = connection.request("GET", "/health", **headers)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
