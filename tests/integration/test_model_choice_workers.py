"""A provider added to the catalogue answers in every worker of a real gunicorn, with no restart.

The chat service runs under gunicorn with the deployed configuration and three workers, on the
deployment's provider (the module's fake server, LLM_MODEL=chat-model). Replies are sent on
fresh connections from several threads until each worker has answered one (seen from the
worker's own socket to the model server in /proc). Then a second provider and its model,
marked default, are stored the way an admin change lands (commit, then the version bump in
Redis): every worker must answer with it, the same workers, none restarted.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.bench.open_streams import deployed_chat_config, worker_pids
from tests.fakes.openai_server import FakeOpenAIServer, reply_text
from tests.integration.catalogue_support import add_model, add_provider
from tests.integration.gunicorn_support import start_gunicorn
from tests.waiting import EVENT_TIMEOUT, answers_health, stop, wait_for

pytestmark = pytest.mark.integration

WORKERS = 3
# Bursts of replies sent at most while waiting for the kernel to use every worker.
MAX_BURSTS = 8
BURST = 12
PASSWORD = "correct horse battery"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def connected_to(pid: int, port: int) -> bool:
    """Tell whether a process holds an open TCP connection to ``port`` of 127.0.0.1.

    The workers keep their connections to a model server alive between replies, so a worker
    that answered through a server still holds one to it.
    """
    inodes = _socket_inodes(pid)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        # 01: ESTABLISHED; the address is hex, 0100007F being 127.0.0.1.
        if state == "01" and inode in inodes and remote == f"0100007F:{port:04X}":
            return True
    return False


@pytest.fixture(scope="module")
def second_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
def chat_service(
    tmp_path: Path,
    subprocess_env: dict[str, str],
    migrated_database: None,
    unused_port: int,
    fake_openai: FakeOpenAIServer,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    env = {
        **subprocess_env,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "LLM_MODEL": "chat-model",
        "LLM_TIMEOUT": f"{EVENT_TIMEOUT:g}",
    }
    log = tmp_path / "gunicorn.log"
    proc = start_gunicorn(tmp_path, deployed_chat_config(unused_port, workers=WORKERS), env, log)
    try:
        wait_for(
            lambda: answers_health(unused_port) and len(worker_pids(proc.pid)) == WORKERS,
            "the chat service answering with all its workers",
            abandon=lambda: None if proc.poll() is None else log.read_text()[-3000:],
            interval=0.1,
        )
        yield proc, f"http://127.0.0.1:{unused_port}"
    finally:
        # Only the master this fixture started, by its PID; it stops its own workers.
        stop(proc)


def _conversations(make_app, count: int) -> tuple[dict[str, str], list[int]]:
    client = make_app("all", RATE_LIMIT_REQUESTS="1000000").test_client()
    body = {"email": "workers@example.com", "password": PASSWORD}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    token = client.post("/api/v1/auth/login", json=body).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    ids = []
    for _ in range(count):
        response = client.post("/api/v1/chat/conversations", json={}, headers=headers)
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["conversation"]["id"])
    return headers, ids


def _until_every_worker(
    url: str,
    headers: dict[str, str],
    conversations: Iterator[int],
    workers: list[int],
    answered: Callable[[int], bool],
) -> list[dict]:
    """Send bursts of replies on fresh connections until every worker answered one."""

    def post(conversation_id: int) -> dict:
        response = requests.post(
            f"{url}/api/v1/chat/conversations/{conversation_id}/messages",
            # A question of its own: none is answered from the reply cache.
            json={"content": f"Which model are you? ({conversation_id})"},
            # A new connection per request: with keep-alive, one thread would stick to one
            # worker.
            headers={**headers, "Connection": "close"},
            timeout=EVENT_TIMEOUT,
        )
        assert response.status_code == 201, response.text
        return response.json()["reply"]

    replies: list[dict] = []
    with ThreadPoolExecutor(6) as pool:
        for _ in range(MAX_BURSTS):
            replies += pool.map(post, [next(conversations) for _ in range(BURST)])
            if all(answered(pid) for pid in workers):
                return replies
    pytest.fail(f"not every worker answered in {MAX_BURSTS * BURST} replies")


def test_a_stored_provider_answers_in_every_worker_without_a_restart(
    app, make_app, chat_service, fake_openai, second_server
):
    proc, url = chat_service
    headers, ids = _conversations(make_app, 2 * MAX_BURSTS * BURST)
    conversations = iter(ids)
    workers = worker_pids(proc.pid)
    second_server.reset()

    # Every worker answers (and so holds a catalogue snapshot) before the change.
    before = _until_every_worker(
        url,
        headers,
        conversations,
        workers,
        lambda pid: connected_to(pid, fake_openai.port),
    )
    assert {reply["model"] for reply in before} == {"chat-model"}

    provider_id = add_provider(app, "second", second_server.base_url, api_key="sk-workers")
    add_model(app, provider_id, "second-model", "upstream-two", is_default=True)

    after = _until_every_worker(
        url,
        headers,
        conversations,
        workers,
        lambda pid: connected_to(pid, second_server.port),
    )
    assert {(reply["model"], reply["content"]) for reply in after} == {
        ("second-model", reply_text("upstream-two", 8))
    }
    assert len(second_server.chat_requests()) == len(after)
    assert worker_pids(proc.pid) == workers  # the same processes: nothing restarted
