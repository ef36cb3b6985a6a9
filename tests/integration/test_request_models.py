"""Every operation's request body and query string is its model's: parsed, refused and documented.

The models are found where the views declare them (``@accepts``), through each service's URL
map, so a new route is covered as soon as it is registered: a route taking a body or a query
string without a model fails here, as does a document whose request schema is not the model's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from pydantic import BaseModel
from werkzeug.routing import Rule

from tests.integration.conftest import DEFAULT_PASSWORD, AuthActions
from webapp.openapi import build_document
from webapp.openapi.from_models import body_schema, query_parameters
from webapp.request_models.admin import (
    ApiKeyListQuery,
    AuditQuery,
    DeliveryListQuery,
    NoQuery,
    PasswordReset,
    UsageQuery,
    UserConversationsQuery,
    UserListQuery,
    UserUpdate,
    WebhookCreate,
    WebhookUpdate,
)
from webapp.request_models.auth import (
    ApiKeyCreate,
    LoginRequest,
    PasswordChange,
    ProfileUpdate,
    RegisterRequest,
)
from webapp.request_models.catalogue import ModelCreate, ModelUpdate, ProviderCreate, ProviderUpdate
from webapp.request_models.chat import (
    ConversationCreate,
    ConversationExportQuery,
    ConversationListQuery,
    ConversationUpdate,
    MessageCreate,
    PreferencesUpdate,
    Regenerate,
)
from webapp.request_models.parsing import RequestModels, request_models

pytestmark = pytest.mark.integration

SERVICES = ("auth", "chat", "admin")
UNLIMITED = {
    "RATE_LIMIT_REQUESTS": "1000000",
    "LOGIN_RATE_LIMIT": "1000000 per minute",
    "REGISTER_RATE_LIMIT": "1000000 per hour",
}
UNDECLARED = "zz_undeclared"
_PLACEHOLDER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>")

# Operations that take a request body or change something yet read no body at all (a body
# sent to them is not looked at). A new route that takes a body must declare a model instead.
NO_BODY = {
    ("DELETE", "/api/v1/auth/session"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout-all"),
    ("DELETE", "/api/v1/chat/conversations/{conversation_id}"),
    ("POST", "/api/v1/chat/replies/{reply_id}/stop"),
    ("DELETE", "/api/v1/admin/users/{user_id}"),
    ("POST", "/api/v1/admin/users/{user_id}/disable"),
    ("POST", "/api/v1/admin/users/{user_id}/enable"),
    ("DELETE", "/api/v1/admin/webhooks/{webhook_id}"),
    ("POST", "/api/v1/admin/webhooks/{webhook_id}/test"),
    ("POST", "/api/v1/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"),
    ("DELETE", "/api/v1/admin/providers/{provider_id}"),
    ("POST", "/api/v1/admin/providers/{provider_id}/discover"),
    ("DELETE", "/api/v1/admin/models/{model_id}"),
    ("POST", "/api/v1/admin/models/{model_id}/test"),
}
# Query parameters read one by one, leniently (an unknown one is ignored): how a reply is
# delivered, and where an event stream resumes. Documented by hand.
LENIENT_QUERY = {
    ("POST", "/api/v1/chat/conversations/{conversation_id}/messages"): {"stream", "wait"},
    ("POST", "/api/v1/chat/conversations/{conversation_id}/regenerate"): {"stream", "wait"},
    ("GET", "/api/v1/chat/replies/{reply_id}/events"): {"last_event_id"},
}
# A valid request of each model: the undeclared field added to it is the only fault.
VALID: dict[type[BaseModel], dict[str, Any]] = {
    RegisterRequest: {"email": "new@example.com", "password": DEFAULT_PASSWORD},
    LoginRequest: {"email": "alice@example.com", "password": DEFAULT_PASSWORD},
    ProfileUpdate: {"display_name": "Alice"},
    PasswordChange: {"current_password": DEFAULT_PASSWORD, "new_password": "Another-pass-42"},
    ConversationCreate: {"title": "Trip"},
    ConversationUpdate: {"title": "Trip"},
    MessageCreate: {"content": "hello"},
    PreferencesUpdate: {"default_model": None},
    Regenerate: {},
    UserUpdate: {"role": "admin"},
    PasswordReset: {"password": "Another-pass-42"},
    WebhookCreate: {"url": "https://hooks.example.com/x", "events": ["user.registered"]},
    WebhookUpdate: {"active": False},
    ProviderCreate: {"name": "local", "base_url": "http://127.0.0.1:9/v1"},
    ProviderUpdate: {"timeout_seconds": 5},
    ModelCreate: {"provider": "local", "name": "m", "upstream_id": "m"},
    ModelUpdate: {"enabled": False},
    ConversationListQuery: {"limit": "5"},
    ConversationExportQuery: {"format": "md"},
    UsageQuery: {"top": "3"},
    AuditQuery: {"limit": "5"},
    UserListQuery: {"active": "true"},
    UserConversationsQuery: {"limit": "5"},
    DeliveryListQuery: {"limit": "5"},
    NoQuery: {},
    ApiKeyCreate: {"name": "laptop", "expires_at": "2999-01-01"},
    ApiKeyListQuery: {"user_id": "1"},
}


def _openapi_path(rule: Rule) -> str:
    return _PLACEHOLDER.sub(r"{\1}", rule.rule)


def _operations(apps: dict[str, Flask]) -> Iterator[tuple[str, str, str, RequestModels | None]]:
    """Yield (service, method, OpenAPI path, models) of every API operation of every service."""
    for service, app in apps.items():
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/api/"):
                continue
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                view = app.view_functions[rule.endpoint]
                yield service, method, _openapi_path(rule), request_models(view)


@pytest.fixture
def services(make_app) -> dict[str, Flask]:
    return {name: make_app(name, **UNLIMITED) for name in SERVICES}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].removeprefix("#/components/schemas/")
    return document["components"]["schemas"][name]


def test_every_documented_request_is_its_models(services):
    checked_bodies = checked_queries = 0
    for service, method, path, models in _operations(services):
        document = build_document(service)
        operation = document["paths"].get(path, {}).get(method.lower())
        where = f"{method} {path}"
        if operation is None:
            assert models is None, f"{where} has request models but is not documented"
            continue
        body = operation.get("requestBody")
        if models is None or models.body is None:
            assert body is None, f"{where}: a documented body without a model"
            if method in ("POST", "PUT", "PATCH"):
                assert (method, path) in NO_BODY, f"{where} changes something without a model"
        else:
            assert body["required"] is models.body_required, where
            schema = _resolve(document, body["content"]["application/json"]["schema"])
            assert schema == body_schema(models.body), where
            checked_bodies += 1
        documented = [p for p in operation.get("parameters", []) if p["in"] == "query"]
        if models is None or models.query is None:
            names = {p["name"] for p in documented}
            assert names <= LENIENT_QUERY.get((method, path), set()), where
        else:
            assert documented == query_parameters(models.query), where
            checked_queries += 1
    # The positive control: every model of today was reached through a URL map.
    assert checked_bodies >= 13
    assert checked_queries >= 8


def test_every_model_refuses_an_undeclared_field(services, auth: AuthActions):
    user = auth.signup().headers
    headers = {"auth": user, "chat": user, "admin": auth.admin().headers}
    tried: set[type[BaseModel]] = set()
    for service, method, path, models in _operations(services):
        if models is None:
            continue
        url = re.sub(r"\{[a-z_]+\}", "1", path)
        client = services[service].test_client()
        if models.body is not None:
            valid = VALID[models.body]
            models.body.model_validate(valid)  # the example alone is valid
            response = client.open(
                url, method=method, json={**valid, UNDECLARED: 1}, headers=headers[service]
            )
            message = f"Unknown field: {UNDECLARED}"
            tried.add(models.body)
        else:
            assert models.query is not None
            valid = VALID[models.query]
            models.query.model_validate(valid)
            response = client.open(
                url,
                method=method,
                query_string={**valid, UNDECLARED: "1"},
                headers=headers[service],
            )
            message = f"Unknown query parameter: {UNDECLARED}"
            tried.add(models.query)
        assert response.status_code == 400, (method, path, response.get_json())
        assert response.get_json() == {
            "error": {"code": "validation_error", "message": message, "field": UNDECLARED}
        }, (method, path)
    assert tried == set(VALID)
