"""The web UI's pages as Flask serves them: every page answers, under a strict CSP.

The browser tests (tests/e2e) drive the pages for real; these check, without a deployment,
what the pages promise: no inline script or style (so script-src 'self' holds), every asset
they reference is shipped and served, values are escaped, and each service serves only its
own pages.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.assertions import assert_error
from tests.integration.auth_support import ACCESS_COOKIE, ME, browser_login
from tests.integration.conftest import AppFactory, AuthActions
from webapp.extensions import db
from webapp.models import USER_ROLES, AuditEvent
from webapp.services import catalogue_admin
from webapp.web import PAGE_BLUEPRINTS
from webapp.web.admin import ADMIN_PAGES
from webapp.web.pages import PAGE_CSP, render_page

PAGES = {
    "/account/login": "auth",
    "/account/register": "auth",
    "/account/profile": "auth",
    "/": "chat",
    "/admin/": "admin",
    "/admin/users": "admin",
    "/admin/audit": "admin",
    "/admin/webhooks": "admin",
    "/admin/providers": "admin",
    "/admin/models": "admin",
    "/admin/api-keys": "admin",
    "/admin/status": "admin",
}
STATIC = Path(__file__).resolve().parents[2] / "webapp" / "static"
SIGN_OUT_EVERYWHERE = "/api/v1/auth/logout-all"

pytestmark = pytest.mark.integration


class _PageParser(HTMLParser):
    """Collect what matters for the CSP: scripts, styles, inline handlers and assets."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts: list[str] = []
        self.problems: list[str] = []
        self.assets: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.problems.append("<style>")
        if tag == "script":
            if values.get("src"):
                self.assets.append(values["src"] or "")
            else:
                self._in_script = True
        if tag == "link" and values.get("href"):
            self.assets.append(values["href"] or "")
        for name in ("href", "src", "action"):
            if (values.get(name) or "").lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


@pytest.mark.parametrize("path", sorted(PAGES))
def test_page_is_served_under_a_strict_csp(client: FlaskClient, path: str) -> None:
    """Each page answers 200 with the CSP, and holds no inline script, style or handler."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    assert "'unsafe-inline'" not in PAGE_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    parser = _PageParser()
    parser.feed(response.get_data(as_text=True))
    assert parser.inline_scripts == []
    assert parser.problems == []
    # Every asset is a file of the package, served here (no CDN, works air-gapped).
    assert parser.assets, "the page loads no assets"
    for asset in parser.assets:
        assert asset.startswith("/static/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        served.close()


def test_assets_are_files_of_the_package() -> None:
    """The scripts never insert HTML strings, evaluate code, or load anything from elsewhere."""
    scripts = sorted((STATIC / "js").glob("*.js"))
    assert {p.name for p in scripts} >= {"api.js", "chat.js", "markdown.js", "theme.js"}
    for script in scripts:
        # The code, without its comments (which may well name what it avoids).
        source = "\n".join(
            line for line in script.read_text().splitlines() if not line.strip().startswith("//")
        )
        for forbidden in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert forbidden not in source, f"{script.name} uses {forbidden}"
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", source), script.name
        # Web storage holds the colour theme only; a token is never in reach of a script.
        if script.name != "theme.js":
            assert "localStorage" not in source, script.name
        assert "sessionStorage" not in source, script.name


@pytest.mark.parametrize(
    ("service", "served", "absent"),
    [
        ("auth", "/account/login", "/admin/"),
        ("chat", "/", "/account/login"),
        ("admin", "/admin/users", "/"),
    ],
)
def test_each_service_serves_its_own_pages(
    make_app: AppFactory, service: str, served: str, absent: str
) -> None:
    """The page blueprints follow the services, as nginx routes them (wiring.yml)."""
    client = make_app(service).test_client()
    assert client.get(served).status_code == 200
    assert client.get(absent).status_code == 404
    asset = client.get("/static/js/api.js")
    assert asset.status_code == 200
    asset.close()


def test_templates_escape_values(app: Flask) -> None:
    """Values rendered into a page are escaped (autoescape is on for the templates)."""
    with app.test_request_context("/"):
        page = render_page("chat/index.html", title="<script>alert(1)</script>", script="chat.js")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_sign_out_everywhere_ends_every_session(
    client: FlaskClient, auth: AuthActions, app: Flask
) -> None:
    """The profile's "sign out everywhere": CSRF-checked, then every token of the user is void."""
    auth.register()
    bearer_tokens = auth.tokens()
    browser = browser_login(client)
    # Without the double-submit header the cookie alone is refused.
    assert_error(client.post(SIGN_OUT_EVERYWHERE), 403, "csrf_failed")
    assert client.get(ME).status_code == 200

    response = client.post(SIGN_OUT_EVERYWHERE, headers=browser.csrf)
    assert response.status_code == 204
    assert browser.cookie(ACCESS_COOKIE) is None
    # The other session (an API client) is signed out too.
    assert_error(client.get(ME, headers=bearer_tokens.headers), 401, "unauthorized")
    other = app.test_client()
    assert_error(other.get(ME, headers=bearer_tokens.headers), 401, "unauthorized")


def test_sign_out_everywhere_needs_a_session(client: FlaskClient) -> None:
    """Anonymous: 401 in the API's error shape."""
    assert_error(client.post(SIGN_OUT_EVERYWHERE), 401, "unauthorized")


def test_page_blueprints_are_the_known_ones(app: Flask) -> None:
    """PAGE_BLUEPRINTS (left out of the OpenAPI documents) names every page blueprint."""
    pages = {name for name, bp in app.blueprints.items() if bp.import_name.startswith("webapp.web")}
    assert pages == set(PAGE_BLUEPRINTS)


def test_sign_out_everywhere_is_audited(app: Flask, auth: AuthActions, client: FlaskClient) -> None:
    """The caller's own revocation of all sessions is a security event in the audit log."""
    user = auth.signup()
    assert client.post(SIGN_OUT_EVERYWHERE, headers=user.headers).status_code == 204
    assert_error(client.get(ME, headers=user.headers), 401, "unauthorized")
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "auth.sessions_revoked")
        ).one()
        assert event.actor_id == user.user["id"]
        assert event.target_id == str(user.user["id"])


class _IdParser(HTMLParser):
    """Collect the ids, links and form controls of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.controls: dict[str, dict[str, str | None]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if tag in ("input", "select", "textarea") and values.get("name"):
            self.controls.setdefault(values["name"] or "", {"tag": tag, **values})


def _parse(client: FlaskClient, path: str) -> _IdParser:
    response = client.get(path)
    assert response.status_code == 200, path
    parser = _IdParser()
    parser.feed(response.get_data(as_text=True))
    return parser


@pytest.mark.parametrize("path", [p for p in PAGES if p.startswith("/admin/")])
def test_admin_navigation_links_every_admin_page(client: FlaskClient, path: str) -> None:
    """Every admin page's navigation links every admin page, the model catalogue's included."""
    links = _parse(client, path).links
    for _endpoint, page, _title in ADMIN_PAGES:
        assert f"/admin{page}" in links, (path, page)
    assert {"/admin/providers", "/admin/models", "/admin/api-keys"} <= set(links)


def test_provider_form_keeps_the_api_key_write_only(client: FlaskClient) -> None:
    """The provider form's key field is a password field the browser never fills or stores."""
    page = _parse(client, "/admin/providers")
    key = page.controls["api_key"]
    assert key["type"] == "password"
    assert key["autocomplete"] == "off"
    assert {"name", "base_url", "timeout_seconds", "extra_headers", "api_key_clear"} <= set(
        page.controls
    )
    assert {"providers-table", "discover-table", "provider-form"} <= page.ids


def test_model_form_has_every_field_of_the_api(client: FlaskClient) -> None:
    """The model form sends each field of the admin API's model, and offers every role."""
    response = client.get("/admin/models")
    page = _IdParser()
    page.feed(response.get_data(as_text=True))
    # Every field the admin API takes for a model has a control.
    assert set(catalogue_admin.MODEL_FIELDS) <= set(page.controls)
    html = response.get_data(as_text=True)
    for role in USER_ROLES:
        assert f'name="allowed_roles" value="{role}"' in html
    assert "model-test-result" in page.ids


def test_chat_page_has_the_model_picker_and_settings(client: FlaskClient) -> None:
    """The conversation header offers the model picker and the settings panel."""
    page = _parse(client, "/")
    assert {"model-picker", "settings-toggle", "settings-form"} <= page.ids
    assert page.controls["system_prompt"]["maxlength"] == "4000"
    temperature = page.controls["temperature"]
    assert (temperature["type"], temperature["min"], temperature["max"]) == ("number", "0", "2")


def test_profile_has_the_default_model_and_api_keys(client: FlaskClient) -> None:
    """The account page offers the default model and the API keys (the key shown once)."""
    page = _parse(client, "/account/profile")
    assert page.controls["default_model"]["tag"] == "select"
    assert {"api_key_name", "api_key_expires"} <= set(page.controls)
    assert page.controls["api_key_expires"]["type"] == "date"
    assert {"api-keys-table", "new-api-key", "new-api-key-value", "new-api-key-copy"} <= page.ids


@pytest.mark.parametrize(
    ("page", "admin_page", "api"),
    [
        ("/admin/providers", "providers", "/api/v1/admin/providers"),
        ("/admin/models", "models", "/api/v1/admin/models"),
        ("/admin/api-keys", "api_keys", "/api/v1/admin/api-keys"),
    ],
)
def test_issue_14_pages_are_admin_only_like_the_others(
    client: FlaskClient, auth: AuthActions, page: str, admin_page: str, api: str
) -> None:
    """The new admin pages are shells like every admin page: admin.js shows them to admins
    only, and what they load (the admin API) refuses anyone else."""
    shell = client.get(page).get_data(as_text=True)
    assert f'data-admin-page="{admin_page}"' in shell
    assert 'src="/static/js/admin.js' in shell
    assert_error(client.get(api), 401, "unauthorized")
    user = auth.signup()
    assert_error(client.get(api, headers=user.headers), 403, "forbidden")
    admin = auth.admin()
    assert client.get(api, headers=admin.headers).status_code == 200
