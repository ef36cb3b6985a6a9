"""Hostile input on every route of the three services: always a 4xx in the error shape, never a 500.

The routes are enumerated from each service's URL map and their query parameters from its
OpenAPI document, so a route or parameter added later is covered without touching this file.
Each class of input is sent with a user's token and with an admin's: out-of-range and malformed
ids in the path, out-of-range numbers, extreme dates and forged cursors in the query, deeply
nested and oversized bodies, and validly signed tokens whose subject or type is not ours.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask_jwt_extended import create_access_token
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from tests.assertions import assert_names_field
from tests.integration.auth_support import resign
from webapp.app import MAX_CONTENT_LENGTH
from webapp.extensions import db
from webapp.models import INTEGER_MAX, User
from webapp.openapi.documents import build_document
from webapp.request_body import MAX_JSON_DEPTH
from webapp.routing import ID_CONVERTERS
from webapp.services.sessions import SESSION_CLAIM, new_session_id

pytestmark = pytest.mark.integration

SERVICES = ("auth", "chat", "admin")
IGNORED_METHODS = {"HEAD", "OPTIONS"}
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Generous limits: this file sends thousands of requests from one address.
UNLIMITED = {
    "RATE_LIMIT_REQUESTS": "1000000",
    "LOGIN_RATE_LIMIT": "1000000 per minute",
    "REGISTER_RATE_LIMIT": "1000000 per hour",
}
_PLACEHOLDER = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>[a-z_]+)>")

# Numbers no id column holds and words that are no number: hostile in a path and in a query.
NOT_AN_ID = ("0", "-1", str(2**31), str(2**63), "9" * 20, "1e3", "abc", "%00")
# Path ids no column holds, or that are no ids at all.
HOSTILE_IDS = (
    *NOT_AN_ID,
    "+1",
    "1.5",
    "%C2%B9",  # superscript one: a digit to str.isdigit, not to int()
)
HOSTILE_STRINGS = ("..%2F..%2Fetc%2Fpasswd", "%00", "%ED%A0%80", "x" * 2000)


def _cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


# Sent to every documented query parameter, whatever its type.
HOSTILE_QUERY_VALUES = (
    "",
    *NOT_AN_ID,
    "%ED%A0%80",
    "x" * 3000,
    "9999-12-31",
    "0001-01-01",
    "10000-01-01",
    "2026-02-30",
    "9999-12-31T23:59:59.999999-14:00",
    "0001-01-01T00:00:00%2B14:00",
    "9999-12-31T23:59:59",
    _cursor("9999-12-31T23:59:59.999999-14:00", 1),
    _cursor("0001-01-01T00:00:00+14:00", 1),
    _cursor("2026-01-01T00:00:00+00:00", 2**31),
    _cursor("2026-01-01T00:00:00+00:00", "1"),
    _cursor(*([[]] * 2)),
    base64.urlsafe_b64encode(b"[" * 150).decode(),
)

DEEP = "[" * 50_000 + "]" * 50_000
HOSTILE_BODIES = (
    DEEP,
    json.dumps({"email": "alice@example.com", "password": "x"})[:-1] + ', "x": ' + DEEP + "}",
    '{"a":' * 20_000 + "1" + "}" * 20_000,
    json.dumps({"title": "x" * (MAX_CONTENT_LENGTH + 1)}),
    "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
    '{"email": "alice@example.com", "password": "\\ud800"}',
    "\xff\xfe",
)


@dataclass(frozen=True)
class Route:
    """One operation of one service."""

    service: str
    method: str
    rule: Rule

    @property
    def api(self) -> bool:
        """Whether the route is an API route, which must answer in the JSON error shape."""
        return self.rule.rule.startswith("/api/") or self.openai

    @property
    def openai(self) -> bool:
        """Whether the route is of the OpenAI-compatible API, whose errors have OpenAI's shape."""
        return self.rule.rule.startswith("/v1/") and not self.rule.rule.endswith(
            ("/openapi.json", "/docs", "/docs/assets/<name>")
        )

    @property
    def unauthorized_code(self) -> str:
        """The error code of a request without valid credentials."""
        return "invalid_api_key" if self.openai else "unauthorized"

    def url(self, **values: str) -> str:
        """Return the path with each placeholder replaced (by the largest id when not given)."""

        def fill(match: re.Match[str]) -> str:
            name = match["name"]
            if name in values:
                return values[name]
            # The largest id an INTEGER column holds: valid, and never an existing row here, so
            # no request of this file changes a real account or conversation.
            return str(INTEGER_MAX) if self._kind(match["converter"]) == "int" else "x"

        return _PLACEHOLDER.sub(fill, self.rule.rule)

    def _kind(self, converter: str | None) -> str:
        # The id converters (webapp.routing) are integer converters with their column's range.
        if converter in ID_CONVERTERS:
            return "int"
        return converter or "default"

    def converters(self) -> dict[str, str]:
        """Map each path argument to its converter's name (``int`` for any integer id)."""
        return {
            m["name"]: self._kind(m["converter"]) for m in _PLACEHOLDER.finditer(self.rule.rule)
        }

    def largest_id(self, name: str) -> int:
        """The ``max`` of an ``int`` path argument's converter (0 for other converters)."""
        found = re.search(rf"<int\(min=1, max=(\d+)\):{name}>", self.rule.rule)
        if found:
            return int(found[1])
        converter = re.search(rf"<(\w+):{name}>", self.rule.rule)
        if converter and converter[1] in ID_CONVERTERS:
            return ID_CONVERTERS[converter[1]](self.rule.map).max or 0
        return 0

    def openapi_path(self) -> str:
        """The route's path as the OpenAPI document writes it."""
        return _PLACEHOLDER.sub(lambda m: "{" + m["name"] + "}", self.rule.rule)

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.rule.rule}"


@pytest.fixture
def services(make_app) -> dict[str, Flask]:
    """One app per service, as gunicorn runs them."""
    return {name: make_app(name, **UNLIMITED) for name in SERVICES}


def routes(apps: dict[str, Flask]) -> Iterator[Route]:
    """Yield every operation of every service, from its URL map."""
    for service, app in apps.items():
        for rule in app.url_map.iter_rules():
            for method in sorted(rule.methods - IGNORED_METHODS):
                yield Route(service, method, rule)


@dataclass
class Identity:
    """A signed-in account, with fresh tokens on demand."""

    app: Flask
    user_id: int
    admin: bool

    def headers(self) -> dict[str, str]:
        """Authorization header with a new session's access token.

        A new session for every route: a logout (or logout-all) reached by a hostile request
        ends only that session, and the next route is still tried signed in.
        """
        with self.app.app_context():
            user = db.session.get(User, self.user_id)
            token = create_access_token(
                identity=user, fresh=True, additional_claims={SESSION_CLAIM: new_session_id()}
            )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["user", "admin"])
def identity(request, app, auth) -> Identity:
    """Each test runs once signed in as a user, once as an admin."""
    tokens = auth.admin() if request.param == "admin" else auth.signup()
    return Identity(app, tokens.user["id"], admin=request.param == "admin")


def assert_refused(route: Route, response: TestResponse, context: object) -> dict[str, Any] | None:
    """Assert a 4xx; on an API route, in the shared error shape. Return its ``error``."""
    status = response.status_code
    assert 400 <= status < 500, (str(route), context, status, response.get_data(as_text=True))
    return assert_error_shape(route, response, context)


def assert_not_a_server_error(route: Route, response: TestResponse, context: object) -> None:
    """Assert no 5xx, and the shared error shape for any 4xx of an API route."""
    status = response.status_code
    assert status < 500, (str(route), context, status, response.get_data(as_text=True)[:500])
    if status >= 400:
        assert_error_shape(route, response, context)


def assert_error_shape(
    route: Route, response: TestResponse, context: object
) -> dict[str, Any] | None:
    if not route.api:
        return None
    body = response.get_json(silent=True)
    assert isinstance(body, dict), (str(route), context, response.get_data(as_text=True)[:200])
    assert set(body) == {"error"}, (str(route), context, body)
    error = body["error"]
    if route.openai:
        # OpenAI's shape: every member present, param and code may be null.
        assert set(error) == {"message", "type", "param", "code"}, (str(route), context, error)
        assert error["message"], (str(route), context, error)
        return error
    for member in ("code", "message"):
        assert isinstance(error.get(member), str), (str(route), context, error)
        assert error[member], (str(route), context, error)
    assert isinstance(error.get("field", ""), str), (str(route), context, error)
    return error


def query_parameters(route: Route) -> list[dict[str, Any]]:
    """The query parameters the service's OpenAPI document gives the route."""
    document = DOCUMENTS[route.service]
    operation = document["paths"].get(route.openapi_path(), {}).get(route.method.lower(), {})
    return [p for p in operation.get("parameters", []) if p["in"] == "query"]


DOCUMENTS = {service: build_document(service) for service in SERVICES}


# --- the enumeration itself ---------------------------------------------------------------------


def test_the_enumeration_finds_every_service_route_and_documented_parameter(services):
    found = {(r.service, r.method, r.openapi_path()) for r in routes(services)}
    assert {
        ("auth", "POST", "/api/v1/auth/login"),
        ("auth", "GET", "/api/v1/auth/me"),
        ("chat", "GET", "/api/v1/chat/conversations"),
        ("chat", "GET", "/api/v1/chat/replies/{reply_id}/events"),
        ("admin", "GET", "/api/v1/admin/users"),
        ("admin", "GET", "/api/v1/admin/usage"),
        ("admin", "GET", "/api/v1/admin/webhooks/{webhook_id}/deliveries/{delivery_id}"),
    } <= found
    parameters = {(str(r), p["name"]) for r in routes(services) for p in query_parameters(r)}
    assert {
        ("admin GET /api/v1/admin/users", "cursor"),
        ("admin GET /api/v1/admin/usage", "until"),
        ("admin GET /api/v1/admin/audit", "since"),
        ("chat GET /api/v1/chat/conversations", "cursor"),
    } <= parameters
    # Every documented operation was found in a URL map: none is missed by a path mismatch.
    for service, document in DOCUMENTS.items():
        served = {r.openapi_path() for r in routes({service: services[service]})}
        assert set(document["paths"]) <= served, service


# --- path arguments -----------------------------------------------------------------------------


def test_out_of_range_and_malformed_path_ids_match_no_route(services, identity):
    tried = 0
    for route in routes(services):
        headers = identity.headers()
        for name, converter in route.converters().items():
            values = HOSTILE_IDS if converter == "int" else HOSTILE_STRINGS
            largest = route.largest_id(name)
            for value in values:
                if value.isascii() and value.isdigit() and 1 <= int(value) <= largest:
                    continue  # a valid id for this column (2**31 for a BIGINT one)
                response = (
                    services[route.service]
                    .test_client()
                    .open(route.url(**{name: value}), method=route.method, headers=headers)
                )
                if converter == "int":
                    error = assert_refused(route, response, (name, value))
                    # 404, or 405 where werkzeug found the path under another method.
                    assert response.status_code in (404, 405), (str(route), name, value)
                    assert error is None or error["code"] in ("not_found", "method_not_allowed")
                    tried += 1
                else:
                    assert_not_a_server_error(route, response, (name, value))
    assert tried >= 20 * len(HOSTILE_IDS)


# --- query parameters ---------------------------------------------------------------------------


def test_hostile_query_values_are_never_a_server_error(services, identity):
    tried = 0
    for route in routes(services):
        if route.service == "admin" and not identity.admin:
            continue  # a 403 before the query is read (test_admin_access.py checks it)
        headers = identity.headers()
        for parameter in query_parameters(route):
            name = parameter["name"]
            for value in HOSTILE_QUERY_VALUES:
                response = (
                    services[route.service]
                    .test_client()
                    .open(
                        f"{route.url()}?{name}={value}",
                        method=route.method,
                        headers=headers,
                    )
                )
                assert_not_a_server_error(route, response, (name, value[:80]))
                tried += 1
    assert tried >= (15 if identity.admin else 4) * len(HOSTILE_QUERY_VALUES)


def test_every_integer_query_parameter_is_refused_past_its_documented_range(services, identity):
    """The documented range is the one enforced: one past either end is a 400 naming it."""
    checked = []
    for route in routes(services):
        for parameter in query_parameters(route):
            schema = parameter["schema"]
            if schema.get("type") != "integer":
                continue
            name = parameter["name"]
            # A documented integer without a maximum would let clients send what the column
            # cannot hold.
            assert "maximum" in schema, (str(route), name, schema)
            assert "minimum" in schema, (str(route), name, schema)
            outside = (
                str(schema["maximum"] + 1),
                str(schema["minimum"] - 1),
                "9" * 20,
                "abc",
                "1.0",
            )
            client = services[route.service].test_client()
            for value in outside:
                response = client.open(
                    f"{route.url()}?{name}={value}", method=route.method, headers=identity.headers()
                )
                if route.service == "admin" and response.status_code == 403:
                    continue  # a user's token on an admin route: refused before the query
                error = assert_refused(route, response, (name, value))
                assert response.status_code == 400, (str(route), name, value, error)
                assert error["field"] == name, (str(route), name, value, error)
            for value in (str(schema["maximum"]), str(schema["minimum"])):
                response = client.open(
                    f"{route.url()}?{name}={value}", method=route.method, headers=identity.headers()
                )
                assert_not_a_server_error(route, response, (name, value))
                if response.status_code == 400:
                    assert response.get_json()["error"].get("field") != name, (str(route), value)
            checked.append((str(route), name))
    assert len(checked) >= 8, checked


# --- bodies -------------------------------------------------------------------------------------


def test_deep_oversized_and_undecodable_bodies_are_4xx_on_every_route(services, identity):
    too_deep = []
    for route in routes(services):
        if route.method not in BODY_METHODS:
            continue
        for body in HOSTILE_BODIES:
            response = (
                services[route.service]
                .test_client()
                .open(
                    route.url(),
                    method=route.method,
                    data=body.encode("utf-8", "surrogatepass"),
                    content_type="application/json",
                    headers=identity.headers(),
                )
            )
            assert_not_a_server_error(route, response, body[:40])
            if body is DEEP and response.status_code == 400:
                assert "nested too deeply" in response.get_json()["error"]["message"]
                too_deep.append(str(route))
    # Every route that reads a body refused the nesting itself (a user's token reaches the
    # auth and chat ones; an admin's the admin ones as well).
    assert len(too_deep) >= 8, too_deep


# --- tokens -------------------------------------------------------------------------------------

FORGED_SUBJECTS = (str(2**31), str(2**63), "9" * 20, "0", "-1", " 1", "1e3", "\u0661")


def test_signed_tokens_with_foreign_subjects_or_types_are_401_on_every_route(services, identity):
    refused = 0
    for route in routes(services):
        app = services[route.service]
        client = app.test_client()
        anonymous = client.open(route.url(), method=route.method, json={})
        valid = identity.headers()["Authorization"].removeprefix("Bearer ")
        forged = [resign(app, valid, sub=sub) for sub in FORGED_SUBJECTS]
        forged += [resign(app, valid, type=kind) for kind in ("bogus", "Access", "", "csrf")]
        for token in forged:
            response = client.open(
                route.url(),
                method=route.method,
                json={},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert_not_a_server_error(route, response, token)
            if anonymous.status_code == 401:
                # A route that needs a token finds none in a forged one.
                error = assert_refused(route, response, token)
                assert response.status_code == 401, (str(route), token)
                assert error["code"] == route.unauthorized_code
                refused += 1
    assert refused >= 30 * 12


# --- the reported cases, one by one -------------------------------------------------------------


@pytest.mark.parametrize("cursor", ["2147483648", "9999999999", str(2**63 - 1)])
def test_a_user_list_cursor_beyond_the_id_column_is_a_400(client, auth, cursor):
    admin = auth.admin()
    response = client.get(f"/api/v1/admin/users?cursor={cursor}", headers=admin.headers)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error == {
        "code": "validation_error",
        "field": "cursor",
        "message": "cursor must be a whole number from 1 to 2147483647",
    }


def test_an_audit_cursor_takes_the_whole_bigint_range(client, auth):
    admin = auth.admin()
    largest = client.get(f"/api/v1/admin/audit?cursor={2**63 - 1}", headers=admin.headers)
    assert largest.status_code == 200, largest.get_json()
    beyond = client.get(f"/api/v1/admin/audit?cursor={2**63}", headers=admin.headers)
    assert_names_field(beyond, "cursor")


def test_the_last_usage_day_is_accepted(client, auth):
    admin = auth.admin()
    response = client.get(
        "/api/v1/admin/usage?since=9999-12-01&until=9999-12-30", headers=admin.headers
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["until"] == "9999-12-30"


@pytest.mark.parametrize("subject", [str(2**31), "9" * 20])
@pytest.mark.parametrize("path", ["/api/v1/auth/me", "/api/v1/chat/conversations"])
def test_a_token_whose_subject_no_column_holds_is_a_401(app, client, alice, subject, path):
    token = resign(app, alice.access, sub=subject)
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("kind", ["bogus", "Access", "", "csrf"])
def test_a_signed_token_of_an_unknown_type_is_no_access_token(app, client, auth, kind):
    admin = auth.admin()
    for tokens, path in ((admin, "/api/v1/auth/me"), (admin, "/api/v1/admin/stats")):
        token = resign(app, tokens.access, type=kind)
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (path, response.get_json())
        assert "Only access or refresh tokens" in response.get_json()["error"]["message"]
    # Nor a refresh token, nor accepted where either type will do (logout).
    refresh = resign(app, admin.refresh, type=kind)
    for path in ("/api/v1/auth/refresh", "/api/v1/auth/logout"):
        response = client.post(path, headers={"Authorization": f"Bearer {refresh}"})
        assert response.status_code == 401, (path, response.get_json())
    # The genuine tokens still work: nothing above signed anybody out.
    assert client.get("/api/v1/auth/me", headers=admin.headers).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/session"])
def test_a_deeply_nested_password_is_a_400(client, alice, path):
    body = '{"email": "alice@example.com", "password": ' + DEEP + "}"
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert f"at most {MAX_JSON_DEPTH} levels" in error["message"]


def test_nesting_within_the_limit_and_brackets_in_strings_are_parsed(client, alice):
    within = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    body = '{"email": "alice@example.com", "password": ' + within + "}"
    response = client.post("/api/v1/auth/login", data=body, content_type="application/json")
    # Decoded: the complaint is about the password's type, not the document.
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "password"
    brackets = {"email": "alice@example.com", "password": "[{" * 1000 + '\\"]' * 100}
    response = client.post("/api/v1/auth/login", json=brackets)
    assert response.status_code == 401, response.get_json()


def test_a_locked_out_login_with_a_deeply_nested_body_is_still_audited(make_app, auth):
    app = make_app(LOGIN_RATE_LIMIT="1 per minute")
    client = app.test_client()
    admin = auth.admin()
    body = '{"email": "alice@example.com", "password": ' + DEEP + "}"
    statuses = [
        client.post("/api/v1/auth/login", data=body, content_type="application/json").status_code
        for _ in range(2)
    ]
    assert statuses == [400, 429]
    response = client.get("/api/v1/admin/audit?action=auth.lockout", headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    assert [(e["action"], e["target_id"]) for e in response.get_json()["events"]] == [
        ("auth.lockout", None)
    ]


def test_a_stream_resumed_from_an_impossible_event_id_is_a_400(chat, auth):
    app = chat()
    client = app.test_client()
    alice = auth.signup()
    for header in (str(2**63), "9" * 20, "-1", "abc"):
        response = client.get(
            f"/api/v1/chat/replies/{2**63 - 1}/events",
            headers={**alice.headers, "Last-Event-ID": header},
        )
        # The request is checked before the reply is looked up (this one does not exist).
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["error"]["field"] == "Last-Event-ID"
