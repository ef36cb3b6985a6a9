"""A pooled database connection that died (restart, failover): a 503 once, then service again.

Pooled connections are not tested before each use (webapp/app.py): the request that meets a
dead one is answered 503 in the API's error shape, never a 500, and the pool is invalidated so
that the next request connects afresh.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.assertions import assert_error
from tests.integration.auth_support import CONVERSATIONS, ME, STATS
from tests.waiting import wait_for

# The app under test names its connections, so that only they are killed (not the fixtures').
APPLICATION_NAME = "chatbot-disconnect-test"
_APP_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"


def terminate_app_backends(database_url: str) -> None:
    """End the sessions of the app under test, as a database restart does; wait until gone."""
    with psycopg.connect(database_url, autocommit=True) as conn:

        def backends() -> set[int]:
            return {pid for (pid,) in conn.execute(_APP_BACKENDS, (APPLICATION_NAME,))}

        pids = backends()
        assert pids, "the app holds no pooled connection to kill"
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: not pids & backends(), "the app's backends to end")


@pytest.mark.parametrize("service", ["chat", "auth", "admin"])
def test_a_dead_pooled_connection_is_a_503_then_the_next_request_works(
    make_app, auth, database_url, service
):
    tokens = auth.admin()
    named = f"{database_url}?application_name={APPLICATION_NAME}"
    client = make_app(service, DATABASE_URL=named).test_client()
    path = {"chat": CONVERSATIONS, "auth": ME, "admin": STATS}[service]
    # One request after another leaves one connection or more idle in the pool; all die below.
    assert client.get(path, headers=tokens.headers).status_code == 200

    terminate_app_backends(database_url)

    error = assert_error(client.get(path, headers=tokens.headers), 503, "service_unavailable")
    assert "database" in error["message"]
    for _ in range(3):
        assert client.get(path, headers=tokens.headers).status_code == 200
