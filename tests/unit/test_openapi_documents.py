"""The OpenAPI documents: valid, and in step with the routes each service registers."""

from __future__ import annotations

import re

import jsonschema
import pytest
from flask import Flask
from openapi_spec_validator import validate

from webapp.app import create_app
from webapp.errors import error_body
from webapp.openapi import (
    ASSET_ENDPOINT,
    DOCUMENTED_SERVICES,
    DOCUMENTS,
    build_document,
    documents_of,
)
from webapp.settings import Settings
from webapp.web import PAGE_BLUEPRINTS

SETTINGS = Settings.from_env(
    {
        # Port 1 on localhost: nothing listens, and building an app connects to nothing.
        "DATABASE_URL": "postgresql://user:password@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SECRET_KEY": "unit-test-secret-key-" + "x" * 32,
    }
)

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Routes deliberately left out of the documents: Flask's static files and the docs page's own
# scripts and styles are not API.
UNDOCUMENTED_ENDPOINTS = {"static"} | {
    f"openapi_{document}.{ASSET_ENDPOINT}" for document in DOCUMENTS
}
# <int(min=1, max=2147483647):conversation_id> -> {conversation_id}
_RULE_VARIABLE = re.compile(r"<(?:\w+(?:\([^)>]*\))?:)?(\w+)>")


def _openapi_path(rule: str) -> str:
    return _RULE_VARIABLE.sub(r"{\1}", rule)


def _routes(app: Flask) -> set[tuple[str, str]]:
    # HEAD and OPTIONS are added to every rule by Flask itself.
    return {
        (method.lower(), _openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in UNDOCUMENTED_ENDPOINTS
        # The web UI's pages (webapp/web) are not API.
        and rule.endpoint.split(".")[0] not in PAGE_BLUEPRINTS
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def _operations(document: dict) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _each_operation(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, f"{method.upper()} {path}", operation


@pytest.mark.parametrize("service", DOCUMENTS)
def test_document_is_valid_openapi(service):
    document = build_document(service)
    assert document["openapi"].startswith("3.")
    validate(document)


@pytest.mark.parametrize("service", DOCUMENTED_SERVICES)
def test_document_lists_exactly_the_routes_of_its_service(service):
    routes = _routes(create_app(service, SETTINGS))
    # The chat service also serves the OpenAI-compatible API, which has a document of its own.
    documented = set().union(*(_operations(build_document(d)) for d in documents_of(service)))
    assert routes - documented == set(), "routes missing from the document"
    assert documented - routes == set(), "documented operations the service does not serve"


def test_the_all_app_serves_exactly_every_document():
    documented = set().union(*(_operations(build_document(d)) for d in DOCUMENTS))
    assert _routes(create_app("all", SETTINGS)) == documented


def test_drift_check_notices_an_undocumented_route():
    # The positive control for the comparison above: a new route must show up as missing.
    app = create_app("admin", SETTINGS)
    app.add_url_rule("/api/v1/admin/secret/<int:n>", "secret", lambda n: "", methods=["POST"])
    missing = _routes(app) - _operations(build_document("admin"))
    assert missing == {("post", "/api/v1/admin/secret/{n}")}


@pytest.mark.parametrize("service", DOCUMENTS)
def test_operations_are_complete(service):
    document = build_document(service)
    operation_ids = []
    for path, name, operation in _each_operation(document):
        operation_ids.append(operation["operationId"])
        statuses = set(operation["responses"])
        assert operation.get("summary"), name
        assert operation.get("tags"), name
        assert "security" in operation, f"{name}: say explicitly who may call it"
        assert any(s.startswith("2") for s in statuses), name
        assert "default" in statuses, name
        if operation["security"]:
            assert "401" in statuses, f"{name} needs authentication but does not list 401"
        if "requestBody" in operation:
            for status in ("400", "413", "415"):
                assert status in statuses, f"{name} takes a JSON body but does not list {status}"
        if path.startswith(("/api/v1/", "/v1/")) and not path.endswith(("/openapi.json", "/docs")):
            assert "429" in statuses, f"{name}: the API rate limit applies"
    assert len(operation_ids) == len(set(operation_ids)), "operationId must be unique"


@pytest.mark.parametrize("service", DOCUMENTS)
def test_security_requirements_name_declared_schemes(service):
    document = build_document(service)
    declared = set(document["components"]["securitySchemes"])
    for _path, name, operation in _each_operation(document):
        for requirement in operation["security"]:
            assert set(requirement) <= declared, name


@pytest.mark.parametrize(
    "body",
    [
        error_body("validation_error", "email is required", "email"),
        error_body("not_found", "Conversation not found."),
    ],
)
def test_error_schema_matches_the_error_shape_the_app_sends(body):
    document = build_document("auth")
    schema = {"components": document["components"], "$ref": "#/components/schemas/Error"}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_error_schema_refuses_another_shape():
    document = build_document("auth")
    schema = {"components": document["components"], "$ref": "#/components/schemas/Error"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"message": "flat"})


def test_build_document_returns_an_independent_copy():
    document = build_document("chat")
    document["paths"].clear()
    assert build_document("chat")["paths"]
