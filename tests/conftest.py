"""Session-wide test services: a real PostgreSQL and a real Redis.

Unless ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` point at existing servers, the first test that
needs them starts a throwaway PostgreSQL 15 cluster and a throwaway redis-server, each on a free
port of 127.0.0.1 with a random password, and stops them (by PID) when the session ends. Unit
tests never request these fixtures, so they never start anything.

An existing database given as ``TEST_DATABASE_URL`` gets the migrations applied and its tables
truncated between tests: never point it at data you want to keep.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from tests.waiting import EVENT_TIMEOUT, wait_for
from webapp.settings import Settings

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "/usr/bin/redis-server")

TEST_DB_NAME = "chatbot_test"
TEST_DB_USER = "chatbot"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    def exited() -> str | None:
        return None if proc.poll() is None else f"it exited with {proc.returncode}"

    try:
        wait_for(ready, f"answer from {proc.args[0]}", abandon=exited, interval=0.05)
    except AssertionError as error:
        pytest.fail(f"{error}:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    # Only the process this fixture started, addressed by its PID.
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=EVENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _as_postgres_user(base: Path) -> dict[str, Any]:
    """Return Popen arguments that run a command as the postgres user when we are root.

    initdb and postgres refuse to run as root. Popen's user/group switch (the equivalent of
    ``runuser -u postgres --``) keeps the returned PID the server's own, so it can be stopped
    precisely.
    """
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")
    for path in (base, *base.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def _throwaway_postgres() -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix="chatbot-test-pg-"))
    try:
        superuser_password = secrets.token_urlsafe(24)
        (base / "pwfile").write_text(superuser_password + "\n")
        run_as = _as_postgres_user(base)
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "--pgdata",
                str(base / "data"),
                "--username=postgres",
                f"--pwfile={base / 'pwfile'}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            cwd=base,
            check=True,
            capture_output=True,
            **run_as,
        )
        port = free_port()
        log = base / "postgres.log"
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(base / "data"),
                    "-p",
                    str(port),
                    "-k",
                    str(base),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    # Durability is pointless for a throwaway cluster; speed is not.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                cwd=base,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                **run_as,
            )
        try:
            admin = f"postgresql://postgres:{superuser_password}@127.0.0.1:{port}/postgres"
            _wait_until(lambda: _can_connect(admin), proc, log)
            yield _create_test_database(admin, port)
        finally:
            # SIGINT is PostgreSQL's "fast" shutdown: abort sessions, then exit cleanly.
            _stop(proc, signal.SIGINT)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _can_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _create_test_database(admin_url: str, port: int) -> str:
    # The app connects as an ordinary role owning its database, as in production, not as the
    # superuser.
    password = secrets.token_urlsafe(24)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(TEST_DB_USER), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(TEST_DB_NAME), sql.Identifier(TEST_DB_USER)
            )
        )
    return f"postgresql://{TEST_DB_USER}:{password}@127.0.0.1:{port}/{TEST_DB_NAME}"


@contextlib.contextmanager
def _throwaway_redis() -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix="chatbot-test-redis-"))
    try:
        password = secrets.token_urlsafe(24)
        port = free_port()
        log = base / "redis.log"
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--requirepass",
                    password,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(base),
                ],
                cwd=base,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        try:
            _wait_until(lambda: _can_ping(url), proc, log)
            yield url
        finally:
            _stop(proc, signal.SIGTERM)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _can_ping(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def _given_or_throwaway(
    variable: str, throwaway: Callable[[], contextlib.AbstractContextManager[str]]
) -> Iterator[str]:
    """Yield the URL named by ``variable``, or else one of a throwaway server run meanwhile."""
    if url := os.environ.get(variable):
        yield url
        return
    with throwaway() as url:
        yield url


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of the test database (``postgresql://``, as an operator would write it)."""
    yield from _given_or_throwaway("TEST_DATABASE_URL", _throwaway_postgres)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the test Redis."""
    yield from _given_or_throwaway("TEST_REDIS_URL", _throwaway_redis)


@pytest.fixture(scope="session")
def settings_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Environment variables configuring the app for the test services.

    No OPENAI_* variable is set, so the bot answers with the built-in offline model and no test
    touches the network.
    """
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        # So the admin API can store provider keys (webapp.secretbox).
        "PROVIDER_KEY_SECRETS": secrets.token_urlsafe(48),
    }


@pytest.fixture(scope="session")
def settings(settings_env: dict[str, str]) -> Settings:
    """Settings for the test services."""
    return Settings.from_env(settings_env)


@pytest.fixture(scope="session")
def subprocess_env(settings_env: dict[str, str]) -> dict[str, str]:
    """Environment for running the app's commands in a subprocess.

    Starts from a minimal environment rather than ``os.environ`` so that a developer's
    OPENAI_API_KEY (or anything else) cannot leak into a test.
    """
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {**env, **settings_env}


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 nothing listens on, for pointing a client at a dead service."""
    return free_port()
