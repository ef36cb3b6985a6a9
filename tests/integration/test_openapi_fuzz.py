"""A schema-based fuzzer (schemathesis) over every operation of the three OpenAPI documents.

Each service's own app serves its ``openapi.json``; schemathesis loads it from there and sends
generated requests, valid ones and invalid ones, to that app (WSGI, real PostgreSQL and Redis),
once with a user's access token and once with an admin's. Every response must be no server error
and agree with the document: a documented status code, a documented content type, a body that
validates against the documented schema.

The number of examples per operation is bounded and the seed fixed (one per operation), so a run
is reproducible and takes a few minutes on a busy 2-core machine.
"""

from __future__ import annotations

import traceback
import zlib
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import given, seed
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response
from schemathesis.generation import GenerationMode

from tests.deploy.schema_fuzz import RESPONSE_CHECKS, fuzz_settings
from tests.integration.auth_support import ME
from tests.integration.conftest import DEFAULT_PASSWORD, AuthActions
from tests.waiting import wait_for
from webapp.chat.runtime import get_runner
from webapp.extensions import REDIS_EXTENSION, db
from webapp.openapi import DOCUMENTED_SERVICES, build_document
from webapp.services import accounts

pytestmark = pytest.mark.integration

# Examples per operation, role and generation mode. Enough to reach every documented response
# of an operation's validation (missing, wrong type, out of range) within a few minutes overall.
MAX_EXAMPLES = 12
METHODS = ("get", "put", "post", "patch", "delete")


def _operations(service: str) -> list[tuple[str, str]]:
    """Return every (method, path) of a service's document, in the document's order."""
    paths = build_document(service)["paths"]
    return [(method, path) for path, item in paths.items() for method in METHODS if method in item]


def _describe(exc: BaseException) -> str:
    """Return the failure and, for a group (Hypothesis' flaky report), each failure in it."""
    parts = [str(exc)]
    for inner in getattr(exc, "exceptions", ()):
        parts.append("".join(traceback.format_exception(inner)))
    return "\n".join(parts)


def _wait_for_replies(served: Flask) -> None:
    """Wait until the replies an example started have been generated.

    A reply answered at once (202, or a stream the client stopped reading) goes on in a thread of
    the chat service, and LangGraph draws its checkpoint ids from the ``random`` module there:
    while the next example is generated, Hypothesis would see the global random state move and
    fail the run as "flaky".
    """
    if "chat" in served.blueprints:
        runner = get_runner(served)
        wait_for(lambda: not runner.running(), "the replies an example started to finish")


def _exchange(case: Any, response: Any) -> str:
    """Return what a failing example sent and what it got back, for the report."""
    got = Response.from_any(response)
    content_type = ", ".join(got.headers.get("content-type", []))
    return (
        f"sent: {case.method} {case.formatted_path} query={case.query!r} body={case.body!r}\n"
        f"got: {got.status_code} {content_type} {got.text_lossy()[:500]}"
    )


class Caller:
    """Holds a signed-in user or admin for the fuzzer, signing in again when needed.

    The fuzzer itself may sign the account out (logout, logout-all), disable it or delete it (as
    the admin, on a generated id). Before each operation the token is checked and, if it no
    longer works, the state is renewed: Redis emptied (sessions and rate-limit counters), the
    account restored, a new token issued through the API.
    """

    def __init__(self, app: Flask, role: str) -> None:
        self._app = app
        self._client = app.test_client()
        self._auth = AuthActions(self._client, app)
        self._role = role
        self._email = f"fuzz-{role}@example.com"
        self.headers: dict[str, str] = {}
        self.renewals = 0
        self._sign_in()

    def _sign_in(self) -> None:
        self._app.extensions[REDIS_EXTENSION].flushdb()
        with self._app.app_context():
            user = accounts.get_user_by_email(db.session, self._email)
            if user is not None:
                user.is_active = True  # an admin (the fuzzer) may have disabled it
            if self._role == "admin":
                accounts.ensure_admin(db.session, email=self._email, password=DEFAULT_PASSWORD)
            elif user is None:
                accounts.register_user(db.session, email=self._email, password=DEFAULT_PASSWORD)
            db.session.commit()
        self.headers = self._auth.tokens(self._email).headers

    def ensure_signed_in(self) -> None:
        """Sign in again if the token stopped working."""
        if self._client.get(ME, headers=self.headers).status_code != 200:
            self.renewals += 1
            self._sign_in()


@pytest.mark.parametrize("role", ["user", "admin"])
@pytest.mark.parametrize("service", DOCUMENTED_SERVICES)
def test_every_response_agrees_with_the_document(app, make_app, service, role):
    caller = Caller(app, role)
    served = make_app(service)
    schema = schemathesis.openapi.from_wsgi(f"/api/v1/{service}/openapi.json", served)
    failures: list[str] = []
    seen: list[str] = []  # what the failing examples of the current operation sent and got

    for method, path in _operations(service):
        operation = schema[path][method.upper()]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            caller.ensure_signed_in()

            # A fixed seed per operation and mode: the same examples on every run, different
            # ones for each operation.
            @seed(zlib.crc32(f"{role} {method} {path} {mode.value}".encode()))
            @fuzz_settings(MAX_EXAMPLES)
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call(headers=caller.headers)
                _wait_for_replies(served)
                try:
                    case.validate_response(response, checks=RESPONSE_CHECKS)
                except (Exception, FailureGroup):
                    # Hypothesis' report of a flaky failure does not say what was sent or got.
                    seen.append(_exchange(case, response))
                    raise

            seen.clear()
            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid: the operation takes no parameters and no body.
                assert mode is GenerationMode.NEGATIVE, f"{method.upper()} {path}"
            except (Exception, FailureGroup) as exc:  # every operation's failure is reported
                failures.append(
                    f"{method.upper()} {path} ({mode.value}):\n{_describe(exc)}\n" + "\n".join(seen)
                )

    assert not failures, f"{len(failures)} operations disagree:\n\n" + "\n\n".join(failures)
