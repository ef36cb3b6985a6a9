"""Every admin API route refuses anonymous callers (401) and non-admins (403).

The routes are enumerated from the app's URL map (every endpoint of the ``admin`` blueprint),
so a route added later is covered without touching this file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, url_for

pytestmark = pytest.mark.integration

IGNORED_METHODS = {"HEAD", "OPTIONS"}
# Routes the admin service serves to everybody: its API document and the page showing it.
PUBLIC_ENDPOINTS = {"openapi_admin.document", "openapi_admin.docs", "openapi_admin.asset"}


def admin_routes(app: Flask) -> Iterator[tuple[str, str]]:
    """Yield ``(method, url)`` of every admin API operation, with 1 for every path argument."""
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("admin."):
                continue
            url = url_for(rule.endpoint, **dict.fromkeys(rule.arguments, 1))
            for method in sorted(rule.methods - IGNORED_METHODS):
                yield method, url


def test_the_enumeration_finds_the_admin_routes(make_app):
    routes = set(admin_routes(make_app("admin")))
    # The positive control: the routes this suite knows of are all found.
    assert {
        ("GET", "/api/v1/admin/stats"),
        ("GET", "/api/v1/admin/status"),
        ("GET", "/api/v1/admin/usage"),
        ("GET", "/api/v1/admin/audit"),
        ("GET", "/api/v1/admin/users"),
        ("GET", "/api/v1/admin/users/1"),
        ("PATCH", "/api/v1/admin/users/1"),
        ("DELETE", "/api/v1/admin/users/1"),
        ("POST", "/api/v1/admin/users/1/disable"),
        ("POST", "/api/v1/admin/users/1/enable"),
        ("POST", "/api/v1/admin/users/1/password"),
        ("GET", "/api/v1/admin/users/1/conversations"),
        ("GET", "/api/v1/admin/users/1/conversations/1"),
        ("GET", "/api/v1/admin/providers"),
        ("POST", "/api/v1/admin/providers"),
        ("GET", "/api/v1/admin/providers/1"),
        ("PATCH", "/api/v1/admin/providers/1"),
        ("DELETE", "/api/v1/admin/providers/1"),
        ("POST", "/api/v1/admin/providers/1/discover"),
        ("GET", "/api/v1/admin/models"),
        ("POST", "/api/v1/admin/models"),
        ("GET", "/api/v1/admin/models/1"),
        ("PATCH", "/api/v1/admin/models/1"),
        ("DELETE", "/api/v1/admin/models/1"),
        ("POST", "/api/v1/admin/models/1/test"),
        ("GET", "/api/v1/admin/api-keys"),
        ("DELETE", "/api/v1/admin/api-keys/1"),
    } <= routes
    assert not any(url.startswith("/api/v1/admin/openapi") for _, url in routes)


@pytest.mark.parametrize("service", ["admin", "all"])
def test_every_admin_route_refuses_anonymous_callers(make_app, service):
    app = make_app(service)
    client = app.test_client()
    routes = list(admin_routes(app))
    assert len(routes) >= 13
    for method, url in routes:
        response = client.open(url, method=method, json={})
        assert response.status_code == 401, (method, url, response.get_json())
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_every_admin_route_refuses_a_non_admin(make_app, auth):
    user = auth.signup("mallory@example.com")
    admin = auth.admin()
    app = make_app("admin")
    client = app.test_client()
    for method, url in admin_routes(app):
        response = client.open(url, method=method, json={}, headers=user.headers)
        assert response.status_code == 403, (method, url, response.get_json())
        assert response.get_json()["error"]["code"] == "forbidden"
    # Nothing was changed by the refused calls: both accounts are as they were.
    listed = client.get("/api/v1/admin/users", headers=admin.headers).get_json()["users"]
    assert {(u["email"], u["role"], u["is_active"]) for u in listed} == {
        ("mallory@example.com", "user", True),
        ("root@example.com", "admin", True),
    }


def test_a_demoted_admin_is_refused_at_once(client, auth):
    first = auth.admin()
    second = auth.admin("second@example.com")
    assert client.get("/api/v1/admin/stats", headers=second.headers).status_code == 200

    response = client.patch(
        f"/api/v1/admin/users/{second.user['id']}", json={"role": "user"}, headers=first.headers
    )

    assert response.status_code == 200, response.get_json()
    # The same, still valid token: the role is read from the database on every request.
    assert client.get("/api/v1/admin/stats", headers=second.headers).status_code == 403
