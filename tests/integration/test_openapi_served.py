"""Each service serves its OpenAPI document and a docs page that loads nothing from elsewhere.

Real responses of the services are also checked against the schemas the documents declare, so
the documents cannot silently drift from what the code sends.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import jsonschema
import pytest
from openapi_spec_validator import validate

from webapp.openapi import DOCUMENTS, build_document
from webapp.openapi.documents import OPENAI_DOCUMENT, api_prefix

pytestmark = pytest.mark.integration

PASSWORD = "contract test 42"
ORIGIN = "http://localhost"  # the test client's host: anything else is another host
# url(...) and @import "..." in stylesheets; quotes optional.
_CSS_URL = re.compile(
    r"""url\(\s*(['"]?)(?P<url>[^'")]+)\1\s*\)|@import\s+(['"])(?P<imp>[^'"]+)\3"""
)
_ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+""", re.IGNORECASE)


class _References(HTMLParser):
    """Collect every URL an HTML page makes the browser load or link to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and name in ("src", "href", "data-openapi-url", "action"):
                self.urls.append(value)


def _same_origin(base: str, url: str) -> str | None:
    """Return the path of ``url`` if it stays on the page's origin, else None."""
    absolute = urljoin(base, url)
    parts = urlsplit(absolute)
    if f"{parts.scheme}://{parts.netloc}" != ORIGIN:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _served_by(document: str) -> str:
    # The OpenAI-compatible API is the chat service's.
    return "chat" if document == OPENAI_DOCUMENT else document


@pytest.mark.parametrize("service", DOCUMENTS)
def test_openapi_json_is_the_valid_document_of_the_service(make_app, service):
    client = make_app(_served_by(service)).test_client()
    response = client.get(f"{api_prefix(service)}/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    validate(document)
    assert document == build_document(service)
    # The document revalidates cheaply.
    again = client.get(
        f"{api_prefix(service)}/openapi.json", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304


def test_a_service_serves_only_its_own_document(make_app):
    client = make_app("auth").test_client()
    assert client.get("/api/v1/chat/openapi.json").status_code == 404
    assert client.get("/api/v1/admin/docs").status_code == 404
    assert client.get("/v1/openapi.json").status_code == 404


@pytest.mark.parametrize("service", DOCUMENTS)
def test_docs_page_and_everything_it_loads_come_from_the_service(make_app, service):
    client = make_app(_served_by(service)).test_client()
    page_path = f"{api_prefix(service)}/docs"
    page = client.get(page_path)
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    # The browser itself would refuse any other host: scripts, styles, fetches, images.
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "http" not in policy

    parser = _References()
    parser.feed(page.get_data(as_text=True))
    assert parser.urls, "the page references nothing: the parser is broken"
    fetched: list[str] = []
    to_fetch = [urljoin(ORIGIN + page_path, url) for url in parser.urls if url != "data:,"]
    while to_fetch:
        url = to_fetch.pop()
        path = _same_origin(ORIGIN + page_path, url)
        assert path is not None, f"{url} is on another host"
        # Closed at once: file responses hold their file open until then.
        with client.get(path) as response:
            assert response.status_code == 200, path
            mimetype, text = response.mimetype, response.get_data(as_text=True)
        fetched.append(urlsplit(path).path)
        if mimetype == "text/css":
            for match in _CSS_URL.finditer(text):
                ref = match.group("url") or match.group("imp")
                if not ref.startswith("data:"):
                    to_fetch.append(urljoin(url, ref))
        if urlsplit(path).path.endswith("docs.js"):
            # Our own script: it must not point the page anywhere else either.
            assert not _ABSOLUTE_URL.search(text)
    prefix = api_prefix(service)
    assert {
        f"{prefix}/openapi.json",
        f"{prefix}/docs/assets/swagger-ui-bundle.js",
        f"{prefix}/docs/assets/swagger-ui.css",
        f"{prefix}/docs/assets/docs.js",
    } <= set(fetched)


def test_same_origin_check_refuses_another_host():
    # The positive control for the check above.
    base = ORIGIN + "/api/v1/auth/docs"
    assert _same_origin(base, "https://cdn.example.com/swagger-ui.js") is None
    assert _same_origin(base, "//cdn.example.com/swagger-ui.js") is None
    assert _same_origin(base, "assets/docs.js") == "/api/v1/auth/assets/docs.js"


def test_only_listed_assets_are_served(make_app):
    client = make_app("chat").test_client()
    with client.get("/api/v1/chat/docs/assets/LICENSE") as response:
        assert response.status_code == 200
        assert "Apache License" in response.get_data(as_text=True)
    for name in ("oauth2-redirect.html", "swagger-ui.js.map", "..%2Fdocs.js", "VERSION"):
        response = client.get(f"/api/v1/chat/docs/assets/{name}")
        assert response.status_code == 404, name
        assert response.get_json()["error"]["code"] == "not_found"


# --- real responses match the documented schemas ----------------------------------------------


def _documented_response(service: str, method: str, path: str, status: int) -> dict:
    document = build_document(service)
    response = document["paths"][path][method]["responses"].get(str(status))
    assert response is not None, f"{method.upper()} {path} does not document {status}"
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def _response_schema(
    service: str, method: str, path: str, status: int, mimetype: str = "application/json"
) -> dict:
    response = _documented_response(service, method, path, status)
    schema = response["content"][mimetype]["schema"]
    return {"components": build_document(service)["components"], **schema}


def _check(service: str, method: str, path: str, response) -> None:
    """Assert that ``response`` is documented for the operation, body and headers."""
    documented = _documented_response(service, method, path, response.status_code)
    for header in documented.get("headers", {}):
        if header != "Set-Cookie":  # only some outcomes set cookies
            assert header in response.headers, f"{header} is documented but missing"
    if "content" not in documented:
        assert response.get_data() == b""
        return
    assert response.mimetype in documented["content"], f"{response.mimetype} is not documented"
    schema = _response_schema(service, method, path, response.status_code, response.mimetype)
    body = response.get_json() if response.is_json else response.get_data(as_text=True)
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)


class Contract:
    """Call one service's API and hold every answer to that service's document."""

    def __init__(self, service: str, client, base_url: str = ORIGIN) -> None:
        self.service = service
        self.client = client
        self.base_url = base_url

    def call(self, method: str, path: str, status: int, *, url: str | None = None, **kwargs):
        """Send a request to ``url`` (default ``path``, the documented path) and check it.

        The response must have ``status``, and that status must be documented for the
        operation with this body and these headers.
        """
        response = self.client.open(
            url or path, method=method.upper(), base_url=self.base_url, **kwargs
        )
        assert response.status_code == status, response.get_data(as_text=True)
        _check(self.service, method, path, response)
        return response


def test_auth_responses_match_the_document(client, auth):
    api = Contract("auth", client)
    account = {"email": "alice@example.com", "password": PASSWORD}
    api.call("post", "/api/v1/auth/register", 201, json=account)
    api.call("post", "/api/v1/auth/register", 409, json=account)
    api.call("post", "/api/v1/auth/register", 400, json={**account, "is_admin": True})
    api.call("post", "/api/v1/auth/register", 415, data="email=a")
    api.call("post", "/api/v1/auth/login", 401, json={**account, "password": "wrong one 1"})
    tokens = api.call("post", "/api/v1/auth/login", 200, json=account).get_json()
    headers = auth.bearer(tokens["access_token"])

    api.call("get", "/api/v1/auth/me", 200, headers=headers)
    api.call("get", "/api/v1/auth/me", 401)
    api.call("patch", "/api/v1/auth/me", 200, json={"display_name": "Al"}, headers=headers)
    api.call("patch", "/api/v1/auth/me", 400, json={"role": "admin"}, headers=headers)

    change = {"current_password": "not it at all", "new_password": "another horse 42"}
    api.call("post", "/api/v1/auth/password", 403, json=change, headers=headers)
    change["current_password"] = PASSWORD
    tokens = api.call("post", "/api/v1/auth/password", 200, json=change, headers=headers)
    tokens = tokens.get_json()

    refresh = auth.bearer(tokens["refresh_token"])
    refreshed = api.call("post", "/api/v1/auth/refresh", 200, headers=refresh).get_json()
    wrong_type = auth.bearer(refreshed["access_token"])
    api.call("post", "/api/v1/auth/refresh", 401, headers=wrong_type)
    access = auth.bearer(refreshed["access_token"])
    api.call("post", "/api/v1/auth/logout", 204, headers=access)
    api.call("post", "/api/v1/auth/logout", 401, headers=access)


def test_browser_session_responses_match_the_document(make_app, auth):
    # Secure cookies travel over HTTPS only, as in production behind nginx.
    api = Contract("auth", make_app("auth").test_client(), base_url="https://localhost")
    auth.register(password=PASSWORD)
    credentials = {"email": "alice@example.com", "password": PASSWORD}
    session = api.call("post", "/api/v1/auth/session", 200, json=credentials).get_json()
    api.call("delete", "/api/v1/auth/session", 403)  # no CSRF token
    csrf = {"X-CSRF-TOKEN": session["csrf"]["refresh"]}
    refreshed = api.call("post", "/api/v1/auth/refresh", 200, headers=csrf).get_json()
    csrf = {"X-CSRF-TOKEN": refreshed["csrf"]["refresh"]}
    api.call("delete", "/api/v1/auth/session", 204, headers=csrf)


def test_rate_limited_response_matches_the_document(make_app):
    api = Contract("auth", make_app("auth", LOGIN_RATE_LIMIT="1 per minute").test_client())
    credentials = {"email": "nobody@example.com", "password": "wrong password 1"}
    api.call("post", "/api/v1/auth/login", 401, json=credentials)
    api.call("post", "/api/v1/auth/login", 429, json=credentials)


def test_chat_responses_match_the_document(client, auth):
    api = Contract("chat", client)
    headers = auth.signup().headers
    conversations = "/api/v1/chat/conversations"
    one = f"{conversations}/{{conversation_id}}"
    created = api.call("post", conversations, 201, json={"title": "First"}, headers=headers)
    cid = created.get_json()["conversation"]["id"]
    api.call("post", conversations, 401, json={})
    api.call("get", conversations, 200, headers=headers)
    message = {"content": "Hello"}
    url = f"{conversations}/{cid}/messages"
    api.call("post", f"{one}/messages", 201, url=url, json=message, headers=headers)
    api.call("post", f"{one}/messages", 400, url=url, json={"content": ""}, headers=headers)
    missing = f"{conversations}/{cid + 1000}/messages"
    api.call("post", f"{one}/messages", 404, url=missing, json=message, headers=headers)
    api.call("get", one, 200, url=f"{conversations}/{cid}", headers=headers)
    api.call("get", one, 404, url=f"{conversations}/{cid + 1000}", headers=headers)


def test_conversation_management_responses_match_the_document(client, auth):
    api = Contract("chat", client)
    headers = auth.signup().headers
    conversations = "/api/v1/chat/conversations"
    one = f"{conversations}/{{conversation_id}}"
    ids = [
        api.call("post", conversations, 201, json={}, headers=headers).get_json()["conversation"][
            "id"
        ]
        for _ in range(2)
    ]
    cid, missing = ids[0], f"{conversations}/{ids[-1] + 1000}"
    api.call(
        "post",
        f"{one}/messages",
        201,
        url=f"{conversations}/{cid}/messages",
        json={"content": "Hello"},
        headers=headers,
    )

    page = api.call("get", conversations, 200, url=f"{conversations}?limit=1", headers=headers)
    assert page.get_json()["next_cursor"] is not None
    api.call("get", conversations, 200, url=f"{conversations}?q=hello", headers=headers)
    api.call("get", conversations, 400, url=f"{conversations}?limit=0", headers=headers)
    api.call("get", conversations, 400, url=f"{conversations}?cursor=x", headers=headers)

    rename = {"title": "Renamed"}
    api.call("patch", one, 200, url=f"{conversations}/{cid}", json=rename, headers=headers)
    api.call("patch", one, 400, url=f"{conversations}/{cid}", json={"x": 1}, headers=headers)
    api.call("patch", one, 415, url=f"{conversations}/{cid}", data="title=x", headers=headers)
    api.call("patch", one, 404, url=missing, json=rename, headers=headers)
    api.call("patch", one, 401, url=f"{conversations}/{cid}", json=rename)

    export = f"{one}/export"
    for query in ("", "?format=json", "?format=md"):
        exported_url = f"{conversations}/{cid}/export{query}"
        api.call("get", export, 200, url=exported_url, headers=headers)
    api.call("get", export, 400, url=f"{conversations}/{cid}/export?format=pdf", headers=headers)
    api.call("get", export, 404, url=f"{missing}/export", headers=headers)

    api.call("delete", one, 204, url=f"{conversations}/{cid}", headers=headers)
    api.call("delete", one, 404, url=f"{conversations}/{cid}", headers=headers)
    api.call("delete", one, 401, url=f"{conversations}/{cid}")


def test_admin_and_probe_responses_match_the_document(client, auth):
    api = Contract("admin", client)
    user = auth.signup()
    other = auth.signup("carol@example.com")
    admin = auth.admin()
    api.call("get", "/api/v1/admin/stats", 401)
    api.call("get", "/api/v1/admin/stats", 403, headers=other.headers)
    api.call("get", "/api/v1/admin/stats", 200, headers=admin.headers)
    users = "/api/v1/admin/users/{user_id}"
    for action in ("disable", "enable"):
        url = f"/api/v1/admin/users/{user.user['id']}/{action}"
        api.call("post", f"{users}/{action}", 403, url=url, headers=other.headers)
        api.call("post", f"{users}/{action}", 200, url=url, headers=admin.headers)
    url = f"/api/v1/admin/users/{admin.user['id']}/disable"
    api.call("post", f"{users}/disable", 409, url=url, headers=admin.headers)
    url = "/api/v1/admin/users/999999/enable"
    api.call("post", f"{users}/enable", 404, url=url, headers=admin.headers)
    api.call("get", "/health", 200)
    api.call("get", "/ready", 200)


def test_schema_check_notices_a_wrong_body(client, auth):
    # The positive control: a body of another shape does not pass.
    response = auth.register()
    schema = _response_schema("auth", "post", "/api/v1/auth/login", 200)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(response.get_json())


def test_api_key_responses_match_the_documents(client, auth):
    api = Contract("auth", client)
    alice = auth.signup()
    keys, one = "/api/v1/auth/api-keys", "/api/v1/auth/api-keys/{api_key_id}"
    created = api.call("post", keys, 201, json={"name": "laptop"}, headers=alice.headers)
    api.call("post", keys, 400, json={"name": ""}, headers=alice.headers)
    api.call("post", keys, 401, json={"name": "x"})
    api.call("get", keys, 200, headers=alice.headers)
    key_id = created.get_json()["api_key"]["id"]
    admin = auth.admin()
    admin_api = Contract("admin", client)
    admin_api.call("get", "/api/v1/admin/api-keys", 200, headers=admin.headers)
    admin_api.call(
        "get",
        "/api/v1/admin/api-keys",
        400,
        url="/api/v1/admin/api-keys?user_id=x",
        headers=admin.headers,
    )
    admin_api.call("get", "/api/v1/admin/api-keys", 403, headers=alice.headers)
    api.call("delete", one, 204, url=f"{keys}/{key_id}", headers=alice.headers)
    api.call("delete", one, 404, url=f"{keys}/{key_id}", headers=alice.headers)
    admin_api.call(
        "delete",
        "/api/v1/admin/api-keys/{api_key_id}",
        404,
        url=f"/api/v1/admin/api-keys/{key_id}",
        headers=admin.headers,
    )


def test_openai_api_responses_match_the_document(client, auth):
    api = Contract(OPENAI_DOCUMENT, client)
    alice = auth.signup()
    key = client.post("/api/v1/auth/api-keys", json={"name": "k"}, headers=alice.headers)
    headers = {"Authorization": f"Bearer {key.get_json()['key']}"}
    completions = "/v1/chat/completions"
    question = {"model": "offline", "messages": [{"role": "user", "content": "Hello"}]}
    api.call("get", "/v1/models", 200, headers=headers)
    api.call("get", "/v1/models", 401)
    api.call("get", "/v1/models", 401, headers=alice.headers)
    api.call("get", "/v1/models/{model}", 200, url="/v1/models/offline", headers=headers)
    api.call("get", "/v1/models/{model}", 404, url="/v1/models/no/such:model", headers=headers)
    api.call("post", completions, 200, json=question, headers=headers)
    api.call("post", completions, 400, json={**question, "tools": []}, headers=headers)
    api.call("post", completions, 404, json={**question, "model": "nope"}, headers=headers)
    api.call("post", completions, 415, data="{}", headers=headers)
    api.call("post", completions, 401, json=question)
