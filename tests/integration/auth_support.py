"""Helpers shared by the auth, token and limit tests: token surgery, cookies, signed-in clients."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
from flask import Flask
from flask.testing import FlaskClient

from tests.integration.conftest import DEFAULT_PASSWORD

ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"
SESSION = "/api/v1/auth/session"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
PASSWORD = "/api/v1/auth/password"
REGISTER = "/api/v1/auth/register"
CONVERSATIONS = "/api/v1/chat/conversations"
STATS = "/api/v1/admin/stats"

ACCESS_COOKIE = "access_token_cookie"
REFRESH_COOKIE = "refresh_token_cookie"
ACCESS_CSRF_COOKIE = "csrf_access_token"
REFRESH_CSRF_COOKIE = "csrf_refresh_token"


def _cookie_path(name: str) -> str:
    return "/api/v1/auth/" if name == REFRESH_COOKIE else "/"


def b64(data: dict[str, Any]) -> str:
    """Encode a JWT segment."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(token: str) -> dict[str, Any]:
    """Decode a token without checking it."""
    return pyjwt.decode(token, options={"verify_signature": False})


def resign(app: Flask, token: str, *, drop: tuple[str, ...] = (), **changes: Any) -> str:
    """Return ``token`` with claims changed or dropped, validly signed with the app's key."""
    payload = {k: v for k, v in claims(token).items() if k not in drop} | changes
    return pyjwt.encode(payload, app.config["JWT_SECRET_KEY"], algorithm="HS256")


@dataclass
class BrowserSession:
    """A test client signed in through ``POST /session``, as a browser would be."""

    client: FlaskClient
    body: dict[str, Any]

    def cookie(self, name: str) -> str | None:
        """Return a cookie's value as the client holds it, or None."""
        cookie = self.client.get_cookie(name, path=_cookie_path(name))
        return cookie.value if cookie is not None else None

    @property
    def csrf(self) -> dict[str, str]:
        """The header carrying the access CSRF token, from the cookie the page can read."""
        return {"X-CSRF-TOKEN": self.cookie(ACCESS_CSRF_COOKIE) or ""}

    @property
    def refresh_csrf(self) -> dict[str, str]:
        """The header carrying the refresh CSRF token."""
        return {"X-CSRF-TOKEN": self.cookie(REFRESH_CSRF_COOKIE) or ""}


def browser_login(
    client: FlaskClient, email: str = "alice@example.com", password: str = DEFAULT_PASSWORD
) -> BrowserSession:
    """Sign ``client`` in with cookies (which must succeed)."""
    response = client.post(SESSION, json={"email": email, "password": password})
    assert response.status_code == 200, response.get_data(as_text=True)
    return BrowserSession(client, response.get_json())


def copy_cookie(source: BrowserSession, target: FlaskClient, name: str = ACCESS_COOKIE) -> None:
    """Give another service's client a cookie, as the browser sends it to every path prefix."""
    value = source.cookie(name)
    assert value, f"no {name} cookie"
    target.set_cookie(name, value, path=_cookie_path(name))
