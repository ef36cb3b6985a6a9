"""The chat service's gevent worker: many open reply streams, none of them an OS thread.

The deployed configuration (roles/app's template, the chat entry of playbooks/vars/wiring.yml) with
``worker_class: gevent`` runs the chat service on gunicorn's gevent worker. That only works if
everything a stream or a generation waits on yields to the other greenlets: psycopg (which picks its
wait function when it is imported, so the app must be imported after gevent patched the standard
library) and redis-py (a stream blocks in ``XREAD``). The first test proves both in a patched
process with a wait that could never end if they did not yield; the second starts the real chat
service under gunicorn, as deployed with gevent, and holds 300 streams open at once on a model whose
second token only comes after the test is over: each must get its first token through LangGraph,
with no error, while the workers run a handful of OS threads. The third stops the service the way
systemd does (SIGTERM) while a reply is being generated: the reply must still reach its client and
be stored complete before the worker exits.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from tests.bench.open_streams import (
    Stream,
    deployed_chat_config,
    http_request,
    open_streams,
    os_threads,
    worker_pids,
)
from tests.fakes.openai_server import FakeOpenAIServer, reply_text
from tests.integration.gunicorn_support import REPO, start_gunicorn
from tests.waiting import EVENT_TIMEOUT, answers_health, stop, wait_for
from webapp.extensions import db
from webapp.models import Message

pytestmark = pytest.mark.integration

STREAMS = 300
MODEL = "open-streams"
# OS threads a gevent worker may run: its main thread, gevent's resolver pool and the like, far
# below one per open stream.
MAX_WORKER_THREADS = 32

# Run in a process of its own (never patch the test process). Each part parks one greenlet in a
# wait that only another greenlet of the same process can end: if the wait blocked the process
# instead of yielding, the other greenlet would never run and the script would hang until the
# test's timeout kills it.
COOPERATION_PROBE = """
from gevent import monkey

monkey.patch_all()

import sys

import gevent
import psycopg

from webapp.connections import pooled_redis

database_url, redis_url, bound = sys.argv[1], sys.argv[2], float(sys.argv[3])
looks = int(bound / 0.02)

# psycopg: a query that waits for an advisory lock this process holds on another connection.
holder = psycopg.connect(database_url, autocommit=True)
waiter = psycopg.connect(database_url, autocommit=True)
holder.execute("SELECT pg_advisory_lock(4242)")
locked = gevent.spawn(lambda: waiter.execute("SELECT pg_advisory_lock(4242)").fetchone())
for _ in range(looks):
    waiting = holder.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()[0]
    if waiting:
        break
    gevent.sleep(0.02)
else:
    sys.exit("the query never waited for the lock")
holder.execute("SELECT pg_advisory_unlock(4242)")
locked.get(timeout=bound)
print("psycopg yields")

# redis-py: a blocking XREAD that only an XADD from another greenlet ends.
client = pooled_redis(redis_url, max_connections=4, socket_timeout=bound + 5)
client.delete("probe:stream")
read = gevent.spawn(
    client.xread, {"probe:stream": "0-0"}, count=1, block=int(bound * 1000)
)
for _ in range(looks):
    if int(client.info("clients")["blocked_clients"]):
        break
    gevent.sleep(0.02)
else:
    sys.exit("XREAD never blocked")
client.xadd("probe:stream", {"token": "hello"})
[[_, [(_, fields)]]] = read.get(timeout=bound)
assert fields == {b"token": b"hello"}, fields
print("redis-py yields")
"""


def test_psycopg_and_redis_yield_to_other_greenlets(
    settings_env: dict[str, str], subprocess_env: dict[str, str]
) -> None:
    database_url = settings_env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    result = subprocess.run(
        [sys.executable, "-c", COOPERATION_PROBE, database_url, settings_env["REDIS_URL"], "60"],
        cwd=REPO,
        env={**subprocess_env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=EVENT_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:2] == ["psycopg yields", "redis-py yields"], result.stdout


@pytest.fixture
def model(server: FakeOpenAIServer) -> FakeOpenAIServer:
    """The test model: the first token at once, the second only after every wait of the test."""
    server.reset()
    server.configure(MODEL, tokens=2, token_delay=2 * EVENT_TIMEOUT)
    return server


def _messages_paths(make_app, count: int) -> list[tuple[str, str]]:
    """Sign up a user and create ``count`` conversations; return (token, messages path) each."""
    client = make_app("all", RATE_LIMIT_REQUESTS="1000000").test_client()
    body = {"email": "streams@example.com", "password": "correct horse battery"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    token = client.post("/api/v1/auth/login", json=body).get_json()["access_token"]
    paths = []
    for index in range(count):
        reply = client.post(
            "/api/v1/chat/conversations",
            json={"title": f"stream {index}"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 201, reply.get_json()
        conversation = reply.get_json()["conversation"]["id"]
        paths.append((token, f"/api/v1/chat/conversations/{conversation}/messages"))
    return paths


@pytest.fixture
def messages_paths(app: Flask, make_app) -> list[tuple[str, str]]:
    """One conversation per stream, of one user (``app`` first: it empties the tables last)."""
    return _messages_paths(make_app, STREAMS)


@contextlib.contextmanager
def _chat_service(
    directory: Path,
    env: dict[str, str],
    model: FakeOpenAIServer,
    model_name: str,
    port: int,
    graceful_timeout: int = 5,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the chat service under gunicorn with the deployed configuration, on ``model_name``."""
    env = {
        **env,
        "OPENAI_BASE_URL": model.base_url,
        "LLM_MODEL": model_name,
        "LLM_TIMEOUT": f"{4 * EVENT_TIMEOUT:g}",
        # Every stream may land on one worker: none may be refused as busy.
        "LLM_MAX_CONCURRENT_REPLIES": str(STREAMS),
    }
    log = directory / "gunicorn.log"
    # The chat entry of app_services with gevent, as an operator switches it on (wiring.yml).
    config = deployed_chat_config(
        port, graceful_timeout=graceful_timeout, worker_class="gevent", worker_connections=1000
    )
    proc = start_gunicorn(directory, config, env, log)
    try:
        wait_for(
            lambda: answers_health(port),
            "the chat service answering",
            abandon=lambda: None if proc.poll() is None else log.read_text()[-3000:],
            interval=0.1,
        )
        yield proc
    finally:
        # Only the master this function started, by its PID; it stops its own workers.
        stop(proc)


@pytest.fixture
def chat_service(
    tmp_path: Path,
    subprocess_env: dict[str, str],
    migrated_database: None,
    unused_port: int,
    model: FakeOpenAIServer,
) -> Iterator[subprocess.Popen[bytes]]:
    """The chat service under gunicorn with the deployed configuration, on the test model."""
    with _chat_service(tmp_path, subprocess_env, model, MODEL, unused_port) as proc:
        yield proc


def test_the_deployed_chat_service_holds_300_open_streams_without_a_thread_each(
    chat_service: subprocess.Popen[bytes],
    messages_paths: list[tuple[str, str]],
    unused_port: int,
    model: FakeOpenAIServer,
) -> None:
    address = ("127.0.0.1", unused_port)
    streams = [
        Stream(
            http_request(
                *address,
                path,
                {"content": f"hello {index}"},
                {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            )
        )
        for index, (token, path) in enumerate(messages_paths)
    ]
    with open_streams(address, streams, timeout=EVENT_TIMEOUT) as opened:
        errors = [stream.error for stream in opened if stream.error]
        assert errors == [], f"{len(errors)} of {STREAMS} failed, the first: {errors[0]}"
        # All at once: the model sends no second token before the test ends, so no reply has
        # finished and every stream is still open.
        assert sum(stream.still_open() for stream in opened) == STREAMS
        assert len([r for r in model.requests if r.stream]) == STREAMS
        workers = worker_pids(chat_service.pid)
        assert workers
        threads = {pid: os_threads(pid) for pid in workers}
        assert max(threads.values()) <= MAX_WORKER_THREADS, threads


def test_a_graceful_stop_lets_the_reply_being_generated_finish(
    app: Flask,
    tmp_path: Path,
    subprocess_env: dict[str, str],
    migrated_database: None,
    unused_port: int,
    make_app,
    model: FakeOpenAIServer,
) -> None:
    [(token, path)] = _messages_paths(make_app, 1)
    # Two more tokens after the first, seconds apart: the stop comes while they are due.
    model.configure("finish-on-stop", tokens=3, token_delay=2.0)
    address = ("127.0.0.1", unused_port)
    stream = Stream(
        http_request(
            *address,
            path,
            {"content": "finish me"},
            {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        )
    )
    with (
        _chat_service(
            tmp_path,
            subprocess_env,
            model,
            "finish-on-stop",
            unused_port,
            graceful_timeout=int(EVENT_TIMEOUT),
        ) as proc,
        open_streams(address, [stream], timeout=EVENT_TIMEOUT) as (opened,),
    ):
        assert not opened.error, opened.error
        idle = _idle_kept_alive_connection(address)
        [generation] = model.chat_requests("finish-on-stop")
        assert not generation.finished
        proc.send_signal(signal.SIGTERM)  # what systemd's stop sends: a graceful stop
        # A connection between requests (as nginx keeps them) is closed at once, not after
        # gunicorn's keepalive: the stopping worker waits for the reply in progress only.
        assert idle.recv(1) == b""
        assert not generation.finished
        idle.close()
        rest = _read_to_end(opened)
        assert b"event: done" in rest, rest[-500:]
        assert proc.wait(timeout=EVENT_TIMEOUT) == 0
    with app.app_context():
        reply = db.session.scalars(
            select(Message).where(Message.role == "assistant").order_by(Message.id.desc())
        ).first()
        assert reply is not None
        assert reply.status == "complete"
        assert reply.content == reply_text("finish-on-stop", 3)


def _idle_kept_alive_connection(address: tuple[str, int]) -> socket.socket:
    """Return a connection that had a response and is kept alive for the next request."""
    sock = socket.create_connection(address, timeout=EVENT_TIMEOUT)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    response = b""
    while b"\r\n\r\n" not in response or not response.endswith(b"}\n"):
        data = sock.recv(65536)
        assert data, response
        response += data
    assert response.startswith(b"HTTP/1.1 200"), response
    assert b"connection: close" not in response.lower(), response
    return sock


def _read_to_end(stream: Stream) -> bytes:
    """Read what the server sends on ``stream`` until it closes the connection or ends the reply."""
    sock = stream.sock
    assert sock is not None
    sock.setblocking(True)
    sock.settimeout(EVENT_TIMEOUT)
    received = bytearray()
    deadline = time.monotonic() + EVENT_TIMEOUT
    while time.monotonic() < deadline and b"event: done" not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return bytes(received)
