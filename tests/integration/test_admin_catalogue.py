"""The model catalogue's admin API: providers and models, checked, audited, never leaking a key.

Discovery and model tests go to the fake OpenAI server (tests/fakes/openai_server.py) over
HTTP, with the provider's key and extra headers, as they would to a real provider.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.assertions import assert_error, assert_names_field
from tests.fakes.openai_server import FakeOpenAIServer, reply_text
from tests.integration.test_openapi_served import Contract
from webapp.extensions import REDIS_EXTENSION, db
from webapp.llm.catalogue import CATALOGUE_VERSION_KEY
from webapp.models import AuditEvent, ChatModel, Provider

pytestmark = pytest.mark.integration

PROVIDERS = "/api/v1/admin/providers"
MODELS = "/api/v1/admin/models"
API_KEY = "sk-catalogue-test-secret-0123456789"
HEADER_SECRET = "header-secret-value-42"


@pytest.fixture
def admin(auth):
    return auth.admin()


@pytest.fixture
def api(client: FlaskClient, admin):
    """Call the admin API as the admin: ``api("post", url, json=...)``."""

    def call(method: str, url: str, **kwargs: Any):
        return client.open(url, method=method.upper(), headers=admin.headers, **kwargs)

    return call


def add_provider(api, server: FakeOpenAIServer, name: str = "local", **fields: Any) -> dict:
    body = {"name": name, "base_url": server.base_url, **fields}
    response = api("post", PROVIDERS, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["provider"]


def add_model(api, name: str, provider: str = "local", **fields: Any) -> dict:
    body = {"provider": provider, "name": name, "upstream_id": fields.pop("upstream_id", name)}
    response = api("post", MODELS, json={**body, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["model"]


def audit_events(app, prefix: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like(f"{prefix}%")).order_by(AuditEvent.id)
        ).all()
        db.session.expunge_all()
        db.session.remove()
    return list(rows)


def catalogue_version(app) -> bytes | None:
    return app.extensions[REDIS_EXTENSION].get(CATALOGUE_VERSION_KEY)


# --- providers ----------------------------------------------------------------------------------


def test_provider_crud_keeps_the_key_to_itself(app, api, fake_openai, caplog):
    caplog.set_level(logging.DEBUG)
    created = add_provider(
        api,
        fake_openai,
        api_key=API_KEY,
        timeout_seconds=5,
        extra_headers={"X-Org": HEADER_SECRET},
    )
    assert created["api_key"] == {"set": True, "last4": API_KEY[-4:]}
    assert created["extra_headers"] == {"X-Org": "***"}
    assert (created["kind"], created["managed"], created["timeout_seconds"]) == (
        "openai",
        False,
        5.0,
    )
    url = f"{PROVIDERS}/{created['id']}"

    listed = api("get", PROVIDERS).get_json()["providers"]
    # The managed offline provider first (no OPENAI_* settings here), then the stored one.
    assert [(p["name"], p["managed"], p["id"]) for p in listed] == [
        ("offline", True, None),
        ("local", False, created["id"]),
    ]
    assert api("get", url).get_json()["provider"] == created

    renamed = api("patch", url, json={"name": "renamed", "timeout_seconds": 2.5})
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["provider"]["name"] == "renamed"
    assert renamed.get_json()["provider"]["api_key"]["set"] is True  # untouched
    cleared = api("patch", url, json={"api_key": ""}).get_json()["provider"]
    assert cleared["api_key"] == {"set": False, "last4": None}

    assert api("delete", url).status_code == 204
    assert_error(api("get", url), 404, "not_found")
    assert_error(api("delete", url), 404, "not_found")

    everything = caplog.text + "".join(str(e.details) for e in audit_events(app, "provider."))
    assert API_KEY not in everything
    assert HEADER_SECRET not in everything
    actions = [(e.action, e.details.get("changed")) for e in audit_events(app, "provider.")]
    assert actions == [
        ("provider.create", None),
        ("provider.update", ["name", "timeout_seconds"]),
        ("provider.update", ["api_key"]),
        ("provider.delete", None),
    ]


def test_the_key_is_sealed_in_the_database(app, api, fake_openai):
    created = add_provider(api, fake_openai, api_key=API_KEY)
    with app.app_context():
        row = db.session.get(Provider, created["id"])
        assert row is not None
        assert row.api_key_encrypted
        assert API_KEY not in row.api_key_encrypted
        assert row.api_key_last4 == API_KEY[-4:]
        db.session.remove()


def test_every_change_bumps_the_catalogue_version(app, api, fake_openai):
    versions = [catalogue_version(app)]
    provider = add_provider(api, fake_openai)
    versions.append(catalogue_version(app))
    model = add_model(api, "chat-a")
    versions.append(catalogue_version(app))
    api("patch", f"{MODELS}/{model['id']}", json={"enabled": False})
    versions.append(catalogue_version(app))
    # Nothing changed: no new version.
    api("patch", f"{MODELS}/{model['id']}", json={"enabled": False})
    assert catalogue_version(app) == versions[-1]
    api("delete", f"{PROVIDERS}/{provider['id']}")
    versions.append(catalogue_version(app))
    assert versions[0] is None
    assert len(set(versions)) == len(versions)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"base_url": "http://x/v1"}, "name"),
        ({"name": None, "base_url": "http://x/v1"}, "name"),
        ({"name": "Upper", "base_url": "http://x/v1"}, "name"),
        ({"name": "-dash", "base_url": "http://x/v1"}, "name"),
        ({"name": "x" * 65, "base_url": "http://x/v1"}, "name"),
        ({"name": 7, "base_url": "http://x/v1"}, "name"),
        ({"name": "ok"}, "base_url"),
        ({"name": "ok", "base_url": "ftp://x"}, "base_url"),
        ({"name": "ok", "base_url": "http://user:pw@x/v1"}, "base_url"),
        ({"name": "ok", "base_url": "not a url"}, "base_url"),
        ({"name": "ok", "base_url": "http://x/v1?key=secret"}, "base_url"),
        ({"name": "ok", "base_url": "http://x/\x00"}, "base_url"),
        ({"name": "ok", "base_url": "http://x", "timeout_seconds": 0}, "timeout_seconds"),
        ({"name": "ok", "base_url": "http://x", "timeout_seconds": 601}, "timeout_seconds"),
        ({"name": "ok", "base_url": "http://x", "timeout_seconds": "5"}, "timeout_seconds"),
        ({"name": "ok", "base_url": "http://x", "extra_headers": []}, "extra_headers"),
        ({"name": "ok", "base_url": "http://x", "extra_headers": {"A B": "x"}}, "extra_headers"),
        (
            {"name": "ok", "base_url": "http://x", "extra_headers": {"Authorization": "x"}},
            "extra_headers",
        ),
        ({"name": "ok", "base_url": "http://x", "extra_headers": {"X": "a\nb"}}, "extra_headers"),
        ({"name": "ok", "base_url": "http://x", "extra_headers": {"X": 1}}, "extra_headers"),
        (
            {
                "name": "ok",
                "base_url": "http://x",
                "extra_headers": {f"X-{i}": "v" for i in range(21)},
            },
            "extra_headers",
        ),
        ({"name": "ok", "base_url": "http://x", "api_key": "has space"}, "api_key"),
        ({"name": "ok", "base_url": "http://x", "api_key": 5}, "api_key"),
        ({"name": "ok", "base_url": "http://x", "kind": "openai"}, "kind"),
    ],
)
def test_provider_bodies_are_checked(api, body, field):
    assert_names_field(api("post", PROVIDERS, json=body), field)


def test_taken_and_managed_provider_names_conflict(make_app, auth, api, fake_openai):
    add_provider(api, fake_openai)
    assert_error(
        api("post", PROVIDERS, json={"name": "local", "base_url": fake_openai.base_url}),
        409,
        "conflict",
        "name",
    )
    for managed in ("offline", "environment"):
        assert_error(
            api("post", PROVIDERS, json={"name": managed, "base_url": fake_openai.base_url}),
            409,
            "conflict",
            "name",
        )
    other = add_provider(api, fake_openai, name="other")
    assert_error(
        api("patch", f"{PROVIDERS}/{other['id']}", json={"name": "local"}), 409, "conflict", "name"
    )


def test_a_key_without_key_encryption_is_refused(make_app, auth, fake_openai):
    admin = auth.admin()
    client = make_app("admin", PROVIDER_KEY_SECRETS="").test_client()
    body = {"name": "local", "base_url": fake_openai.base_url, "api_key": API_KEY}
    response = client.post(PROVIDERS, json=body, headers=admin.headers)
    assert_error(response, 409, "key_encryption_unavailable", "api_key")
    # Without a key, a provider can still be added.
    del body["api_key"]
    assert client.post(PROVIDERS, json=body, headers=admin.headers).status_code == 201


# --- discovery and tests against a real (fake) provider -----------------------------------------


def test_discover_lists_the_provider_models_with_its_key_and_headers(api, fake_openai, caplog):
    caplog.set_level(logging.DEBUG)
    fake_openai.configure("alpha", tokens=3)
    fake_openai.configure("beta", tokens=3)
    provider = add_provider(api, fake_openai, api_key=API_KEY, extra_headers={"X-Org": "acme"})
    add_model(api, "my-alpha", upstream_id="alpha")

    response = api("post", f"{PROVIDERS}/{provider['id']}/discover")

    assert response.status_code == 200, response.get_json()
    listed = {m["id"]: m["known"] for m in response.get_json()["models"]}
    assert listed["alpha"] is True
    assert listed["beta"] is False
    (request,) = [r for r in fake_openai.requests if r.path == "/v1/models"]
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["x-org"] == "acme"
    assert API_KEY not in response.get_data(as_text=True)
    # The request was logged (httpx at DEBUG included), the key was not.
    assert "/v1/models" in caplog.text
    assert API_KEY not in caplog.text


def test_discover_of_an_unreachable_provider_is_a_502(api, unused_port):
    body = {"name": "down", "base_url": f"http://127.0.0.1:{unused_port}/v1", "api_key": API_KEY}
    provider = api("post", PROVIDERS, json=body).get_json()["provider"]
    response = api("post", f"{PROVIDERS}/{provider['id']}/discover")
    error = assert_error(response, 502, "upstream_error")
    assert "ConnectError" in error["message"]
    assert API_KEY not in response.get_data(as_text=True)


def test_test_endpoint_sends_one_short_request(api, fake_openai, caplog):
    caplog.set_level(logging.DEBUG)
    fake_openai.configure("alpha", tokens=40)
    add_provider(api, fake_openai, api_key=API_KEY)
    model = add_model(api, "my-alpha", upstream_id="alpha")

    response = api("post", f"{MODELS}/{model['id']}/test")

    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["ok"] is True
    assert result["error"] is None
    assert result["reply"] == reply_text("alpha", 16)
    assert isinstance(result["latency_ms"], int)
    (request,) = fake_openai.chat_requests("alpha")
    assert request.body["max_tokens"] == 16
    assert request.body.get("stream") is False
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in caplog.text


def test_test_endpoint_reports_a_failing_model(api, fake_openai):
    add_provider(api, fake_openai)
    model = add_model(api, "broken", upstream_id="error500")
    result = api("post", f"{MODELS}/{model['id']}/test").get_json()
    assert (result["ok"], result["error"], result["reply"]) == (False, "HTTP 500", "")


# --- models -------------------------------------------------------------------------------------


def test_model_crud_and_listing(app, api, fake_openai):
    add_provider(api, fake_openai)
    model = add_model(
        api,
        "chat-a",
        upstream_id="upstream-a",
        description="Fast",
        context_window=8192,
        max_output_tokens=512,
        default_temperature=0.2,
        allowed_roles=["admin"],
        price_input_per_mtok="0.150000",
        price_output_per_mtok=0.6,
    )
    assert model["display_name"] == "chat-a"  # defaults to the name
    assert model["allowed_roles"] == ["admin"]
    assert (model["price_input_per_mtok"], model["price_output_per_mtok"]) == ("0.15", "0.6")
    assert (model["provider"], model["managed"], model["is_default"]) == ("local", False, False)
    url = f"{MODELS}/{model['id']}"
    assert api("get", url).get_json()["model"] == model

    listed = api("get", MODELS).get_json()["models"]
    assert [(m["name"], m["managed"]) for m in listed] == [("offline", True), ("chat-a", False)]

    changed = api(
        "patch", url, json={"display_name": "Chat A", "price_input_per_mtok": None}
    ).get_json()["model"]
    assert (changed["display_name"], changed["price_input_per_mtok"]) == ("Chat A", None)
    assert api("delete", url).status_code == 204
    assert_error(api("get", url), 404, "not_found")
    assert [e.action for e in audit_events(app, "model.")] == [
        "model.create",
        "model.update",
        "model.delete",
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "bad name"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"upstream_id": ""}, "upstream_id"),
        ({"upstream_id": "x" * 201}, "upstream_id"),
        ({"provider": "nope"}, "provider"),
        ({"provider": "offline"}, "provider"),
        ({"context_window": 0}, "context_window"),
        ({"context_window": 1.5}, "context_window"),
        ({"max_output_tokens": 2**31}, "max_output_tokens"),
        ({"default_temperature": 2.5}, "default_temperature"),
        ({"allowed_roles": []}, "allowed_roles"),
        ({"allowed_roles": ["root"]}, "allowed_roles"),
        ({"price_input_per_mtok": "-1"}, "price_input_per_mtok"),
        ({"price_input_per_mtok": "abc"}, "price_input_per_mtok"),
        ({"price_input_per_mtok": "0.0000001"}, "price_input_per_mtok"),
        ({"price_output_per_mtok": "1000000"}, "price_output_per_mtok"),
        ({"price_output_per_mtok": True}, "price_output_per_mtok"),
        ({"enabled": "yes"}, "enabled"),
        ({"fallback": "nope"}, "fallback"),
        ({"description": "x" * 1001}, "description"),
        ({"display_name": "x\x00"}, "display_name"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_model_bodies_are_checked(api, fake_openai, fields, field):
    add_provider(api, fake_openai)
    body = {"provider": "local", "name": "chat-a", "upstream_id": "a", **fields}
    assert_names_field(api("post", MODELS, json=body), field)


def test_managed_model_names_are_reserved(make_app, auth, fake_openai):
    admin = auth.admin()
    client = make_app(
        "admin",
        OPENAI_BASE_URL=fake_openai.base_url,
        LLM_MODEL="env-primary",
        LLM_FALLBACK_MODEL="env-backup",
    ).test_client()
    headers = admin.headers
    client.post(
        PROVIDERS, json={"name": "local", "base_url": fake_openai.base_url}, headers=headers
    )
    for name in ("offline", "env-primary", "env-backup"):
        body = {"provider": "local", "name": name, "upstream_id": "x"}
        assert_error(client.post(MODELS, json=body, headers=headers), 409, "conflict", "name")
    listed = client.get(MODELS, headers=headers).get_json()["models"]
    managed = [(m["name"], m["provider"], m["fallback"]) for m in listed if m["managed"]]
    assert managed == [
        ("env-primary", "environment", "env-backup"),
        ("offline", "offline", None),
        ("env-backup", "environment", None),
    ]
    providers = client.get(PROVIDERS, headers=headers).get_json()["providers"]
    assert [(p["name"], p["managed"]) for p in providers] == [
        ("offline", True),
        ("environment", True),
        ("local", False),
    ]
    # A model cannot be put on a managed provider.
    body = {"provider": "environment", "name": "x", "upstream_id": "x"}
    assert_names_field(client.post(MODELS, json=body, headers=headers), "provider")


def test_fallback_chains_are_allowed_and_cycles_refused(api, fake_openai):
    add_provider(api, fake_openai)
    a = add_model(api, "a")
    b = add_model(api, "b", fallback="a")
    c = add_model(api, "c", fallback="b")
    assert (b["fallback"], c["fallback"]) == ("a", "b")

    assert_names_field(api("patch", f"{MODELS}/{a['id']}", json={"fallback": "c"}), "fallback")
    assert_names_field(api("patch", f"{MODELS}/{a['id']}", json={"fallback": "a"}), "fallback")
    assert_names_field(api("patch", f"{MODELS}/{b['id']}", json={"fallback": "c"}), "fallback")
    # Nothing of the refused changes was stored.
    assert api("get", f"{MODELS}/{a['id']}").get_json()["model"]["fallback"] is None

    cleared = api("patch", f"{MODELS}/{c['id']}", json={"fallback": None}).get_json()["model"]
    assert cleared["fallback"] is None
    # Deleting a fallback leaves the models that used it without one.
    api("delete", f"{MODELS}/{a['id']}")
    assert api("get", f"{MODELS}/{b['id']}").get_json()["model"]["fallback"] is None


def test_one_default_model(api, fake_openai):
    add_provider(api, fake_openai)
    a = add_model(api, "a", is_default=True)
    b = add_model(api, "b")
    assert a["is_default"] is True
    api("patch", f"{MODELS}/{b['id']}", json={"is_default": True})
    defaults = [m["name"] for m in api("get", MODELS).get_json()["models"] if m["is_default"]]
    assert defaults == ["b"]
    c = add_model(api, "c", is_default=True)
    defaults = [m["name"] for m in api("get", MODELS).get_json()["models"] if m["is_default"]]
    assert defaults == ["c"]
    assert c["is_default"] is True


def test_deleting_a_provider_deletes_its_models(app, api, fake_openai):
    provider = add_provider(api, fake_openai)
    other = add_provider(api, fake_openai, name="other")
    add_model(api, "a")
    add_model(api, "b", provider="other", fallback="a")
    assert api("delete", f"{PROVIDERS}/{provider['id']}").status_code == 204
    stored = [m for m in api("get", MODELS).get_json()["models"] if not m["managed"]]
    assert [(m["name"], m["fallback"]) for m in stored] == [("b", None)]
    (event,) = audit_events(app, "provider.delete")
    assert event.details["models"] == ["a"]
    assert other["id"] != provider["id"]
    with app.app_context():
        assert db.session.scalars(select(ChatModel.name)).all() == ["b"]
        db.session.remove()


# --- the document -------------------------------------------------------------------------------


def test_catalogue_responses_match_the_document(client, admin, fake_openai, unused_port):
    api = Contract("admin", client)
    headers = admin.headers
    fake_openai.configure("alpha", tokens=3)
    body = {"name": "local", "base_url": fake_openai.base_url, "api_key": API_KEY}
    provider = api.call("post", PROVIDERS, 201, json=body, headers=headers).get_json()["provider"]
    one = f"{PROVIDERS}/{{provider_id}}"
    url = f"{PROVIDERS}/{provider['id']}"
    api.call("get", PROVIDERS, 200, headers=headers)
    api.call("post", PROVIDERS, 400, json={"name": "x"}, headers=headers)
    api.call("post", PROVIDERS, 409, json=body, headers=headers)
    api.call("get", one, 200, url=url, headers=headers)
    api.call("get", one, 404, url=f"{PROVIDERS}/999999", headers=headers)
    api.call("patch", one, 200, url=url, json={"timeout_seconds": 3}, headers=headers)
    api.call("post", f"{one}/discover", 200, url=f"{url}/discover", headers=headers)
    down = {"name": "down", "base_url": f"http://127.0.0.1:{unused_port}/v1"}
    down_id = api.call("post", PROVIDERS, 201, json=down, headers=headers).get_json()["provider"][
        "id"
    ]
    api.call("post", f"{one}/discover", 502, url=f"{PROVIDERS}/{down_id}/discover", headers=headers)

    model_body = {
        "provider": "local",
        "name": "a",
        "upstream_id": "alpha",
        "price_input_per_mtok": "1.5",
    }
    model = api.call("post", MODELS, 201, json=model_body, headers=headers).get_json()["model"]
    mone = f"{MODELS}/{{model_id}}"
    murl = f"{MODELS}/{model['id']}"
    api.call("get", MODELS, 200, headers=headers)
    api.call("post", MODELS, 409, json=model_body, headers=headers)
    api.call("get", mone, 200, url=murl, headers=headers)
    api.call("patch", mone, 200, url=murl, json={"fallback": None}, headers=headers)
    api.call("patch", mone, 400, url=murl, json={"fallback": "a"}, headers=headers)
    api.call("post", f"{mone}/test", 200, url=f"{murl}/test", headers=headers)
    api.call("delete", mone, 204, url=murl, headers=headers)
    api.call("delete", mone, 404, url=murl, headers=headers)
    api.call("delete", one, 204, url=url, headers=headers)


# --- the status page ----------------------------------------------------------------------------


def test_status_reports_each_provider(make_app, auth, fake_openai, unused_port):
    admin = auth.admin()
    app = make_app("admin", OPENAI_BASE_URL=fake_openai.base_url, LLM_MODEL="env-model")
    client = app.test_client()
    for name, url in (("up", fake_openai.base_url), ("down", f"http://127.0.0.1:{unused_port}/v1")):
        body = {"name": name, "base_url": url, "api_key": API_KEY}
        assert client.post(PROVIDERS, json=body, headers=admin.headers).status_code == 201

    response = client.get("/api/v1/admin/status", headers=admin.headers)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    providers = {p["name"]: p for p in body["providers"]}
    assert list(providers) == ["offline", "environment", "down", "up"]
    assert providers["offline"] == {
        "name": "offline",
        "kind": "offline",
        "managed": True,
        "status": "ok",
    }
    assert providers["environment"]["status"] == "ok"
    assert providers["up"]["status"] == "ok"
    assert providers["up"]["latency_ms"] > 0
    assert (providers["down"]["status"], providers["down"]["error"]) == (
        "unavailable",
        "ConnectError",
    )
    assert body["status"] == "degraded"
    assert API_KEY not in response.get_data(as_text=True)
    # The stored providers were asked with their key.
    asked = [r for r in fake_openai.requests if r.path == "/v1/models"]
    assert f"Bearer {API_KEY}" in {r.headers.get("authorization") for r in asked}
