"""``/metrics`` adds up across the workers of a real gunicorn, as deployed.

A gunicorn with three gthread workers serves the auth service with ``PROMETHEUS_MULTIPROC_DIR``
set and the hooks of `webapp.gunicorn_hooks`, like the systemd unit. Requests go out on fresh
connections from several threads so that the kernel spreads them over the workers; whichever
worker answers a scrape must report the total of all of them, and a worker that dies must not
take its counts with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.gunicorn_support import start_gunicorn
from tests.waiting import EVENT_TIMEOUT, stop, wait_for

pytestmark = pytest.mark.integration

WORKERS = 3
# Bursts of requests sent at most while waiting for the kernel to use several workers.
MAX_BURSTS = 5
REQUESTS = 300
UNMATCHED_REQUESTS = 30

HEALTH = {"service": "auth", "method": "GET", "route": "/health"}
UNMATCHED = {"service": "auth", "method": "GET", "route": "<unmatched>", "status": "404"}

# The lines the deployed gunicorn configuration carries for metrics, plus a test bind address.
CONFIG = """\
from webapp.gunicorn_hooks import *  # noqa: F403

bind = "127.0.0.1:{port}"
wsgi_app = "webapp.wsgi.auth:app"
workers = {workers}
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 5
accesslog = None
errorlog = "-"
loglevel = "info"
"""


class Gunicorn:
    """A gunicorn master started by the test, and where it listens."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def worker_pids(self) -> set[int]:
        """Return the PIDs of the master's children (its workers)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(pid) for pid in children.read_text().split()}


def _wait_for(condition, what: str, server: Gunicorn) -> None:
    def met() -> bool:
        try:
            return condition()
        except requests.ConnectionError:
            return False

    def exited() -> str | None:
        return None if server.proc.poll() is None else f"gunicorn exited {server.proc.returncode}"

    try:
        wait_for(met, what, abandon=exited, interval=0.1)
    except AssertionError as error:
        pytest.fail(f"{error}\n{server.log.read_text()}")


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "metrics"
    directory.mkdir()
    # Left over from an earlier run: the on_starting hook must remove it, or it would be added
    # to the new counts (and, not being a valid file, break every scrape).
    (directory / "counter_1.db").write_bytes(b"stale")
    return directory


@pytest.fixture
def gunicorn(
    tmp_path: Path,
    multiproc_dir: Path,
    subprocess_env: dict[str, str],
    migrated_database: None,
    unused_port: int,
) -> Iterator[Gunicorn]:
    port = unused_port
    env = {**subprocess_env, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    log = tmp_path / "gunicorn.log"
    proc = start_gunicorn(tmp_path, CONFIG.format(port=port, workers=WORKERS), env, log)
    server = Gunicorn(proc, f"http://127.0.0.1:{port}", log)
    try:
        _wait_for(
            lambda: (
                len(server.worker_pids()) == WORKERS
                and requests.get(f"{server.url}/health", timeout=EVENT_TIMEOUT).status_code == 200
            ),
            "answer from gunicorn with all its workers",
            server,
        )
        yield server
    finally:
        # Only the master this fixture started, by its PID; it stops its own workers.
        stop(proc)


def _scrape(server: Gunicorn) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = requests.get(
        f"{server.url}/metrics", headers={"Connection": "close"}, timeout=EVENT_TIMEOUT
    )
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _get(url: str) -> int:
    # A new connection per request (Connection: close): with keep-alive, one thread would stick
    # to one worker.
    with requests.get(url, headers={"Connection": "close"}, timeout=EVENT_TIMEOUT) as response:
        return response.status_code


def _per_worker_health_counts(directory: Path) -> dict[str, float]:
    """Return, per worker file, how many /health requests it counted."""
    counts = {}
    for path in sorted(directory.glob("counter_*.db")):
        total = 0.0
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "http_requests_total" and labels.get("route") == "/health":
                    total += sample.value
        counts[path.name] = total
    return counts


def test_counters_add_up_across_workers(gunicorn: Gunicorn, multiproc_dir: Path):
    assert not (multiproc_dir / "counter_1.db").exists(), "on_starting did not empty the dir"
    before = _scrape(gunicorn)
    before_per_worker = _per_worker_health_counts(multiproc_dir)

    urls = [f"{gunicorn.url}/health"] * REQUESTS + [
        f"{gunicorn.url}/no/such/path/{i}" for i in range(UNMATCHED_REQUESTS)
    ]
    # The kernel decides which worker accepts a connection; a fast worker can occasionally take
    # a whole burst. Send bursts (at most MAX_BURSTS) until at least two workers served some:
    # the sums below must hold whatever the split.
    bursts = 0
    served: dict[str, float] = {}
    while bursts < MAX_BURSTS and len([c for c in served.values() if c > 0]) < 2:
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(_get, urls))
        assert statuses.count(200) == REQUESTS
        assert statuses.count(404) == UNMATCHED_REQUESTS
        bursts += 1
        after_per_worker = _per_worker_health_counts(multiproc_dir)
        served = {
            name: count - before_per_worker.get(name, 0.0)
            for name, count in after_per_worker.items()
        }

    after = _scrape(gunicorn)

    def delta(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("http_requests_total", **HEALTH, status="200") == REQUESTS * bursts
    assert delta("http_request_duration_seconds_count", **HEALTH) == REQUESTS * bursts
    assert delta("http_requests_total", **UNMATCHED) == UNMATCHED_REQUESTS * bursts

    # Several workers really served them, and the scrape added up each one's own file.
    busy = [name for name, count in served.items() if count > 0]
    assert len(busy) > 1, f"one worker served everything in {bursts} bursts: {served}"
    assert sum(served.values()) == REQUESTS * bursts

    # A worker that exits takes nothing with it: its file stays, its counts stay in the total.
    victim = min(gunicorn.worker_pids())
    os.kill(victim, signal.SIGTERM)
    _wait_for(
        lambda: victim not in gunicorn.worker_pids() and len(gunicorn.worker_pids()) == WORKERS,
        "replacement of the stopped worker",
        gunicorn,
    )
    # No /health request was made since (waiting for the replacement only reads /proc).
    final = _scrape(gunicorn)
    key = ("http_requests_total", frozenset({**HEALTH, "status": "200"}.items()))
    assert final[key] == after[key]
