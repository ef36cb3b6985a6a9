"""The chat service's gevent worker: many open reply streams, none of them an OS thread.

The deployed configuration (roles/app's template, the chat entry of playbooks/vars/wiring.yml)
runs the chat service on gunicorn's gevent worker. That only works if everything a stream or a
generation waits on yields to the other greenlets: psycopg (which picks its wait function when
it is imported, so the app must be imported after gevent patched the standard library) and
redis-py (a stream blocks in ``XREAD``). The first test proves both in a patched process with a
wait that could never end if they did not yield; the second starts the real chat service under
gunicorn, as deployed, and holds 300 streams open at once on a model whose second token only
comes after the test is over: each must get its first token through LangGraph, with no error,
while the workers run a handful of OS threads.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.bench.open_streams import (
    Stream,
    deployed_chat_config,
    http_request,
    open_streams,
    os_threads,
    worker_pids,
)
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.gunicorn_support import REPO, start_gunicorn
from tests.waiting import EVENT_TIMEOUT, stop, wait_for

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


@pytest.fixture
def messages_paths(app: Flask, make_app, model: FakeOpenAIServer) -> list[tuple[str, str]]:
    """Sign up a user and create one conversation per stream; return (token, messages path)."""
    client = make_app("all", RATE_LIMIT_REQUESTS="1000000").test_client()
    body = {"email": "streams@example.com", "password": "correct horse battery"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    token = client.post("/api/v1/auth/login", json=body).get_json()["access_token"]
    paths = []
    for index in range(STREAMS):
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
def chat_service(
    tmp_path: Path,
    subprocess_env: dict[str, str],
    migrated_database: None,
    unused_port: int,
    model: FakeOpenAIServer,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the chat service under gunicorn with the deployed configuration."""
    env = {
        **subprocess_env,
        "OPENAI_BASE_URL": model.base_url,
        "LLM_MODEL": MODEL,
        "LLM_TIMEOUT": f"{4 * EVENT_TIMEOUT:g}",
        # Every stream may land on one worker: none may be refused as busy.
        "LLM_MAX_CONCURRENT_REPLIES": str(STREAMS),
    }
    log = tmp_path / "gunicorn.log"
    proc = start_gunicorn(tmp_path, deployed_chat_config(unused_port), env, log)
    try:
        wait_for(
            lambda: _health(unused_port),
            "the chat service answering",
            abandon=lambda: None if proc.poll() is None else log.read_text()[-3000:],
            interval=0.1,
        )
        yield proc
    finally:
        # Only the master this fixture started, by its PID; it stops its own workers.
        stop(proc)


def _health(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


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
