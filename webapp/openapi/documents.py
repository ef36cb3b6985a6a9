"""Assemble the OpenAPI 3.1 document of each service.

Each service's paths and schemas live in a module of their own (`webapp.openapi.auth`, ``chat``,
``admin``); this module adds what every service shares (errors, security schemes, the probes,
``/metrics`` and the documentation routes). The chat service serves a second document, of the
OpenAI-compatible API (``/v1``, `webapp.openapi.openai_api`), whose errors have OpenAI's shape.
Tests check that the paths match the routes the service registers, both ways, and that the
result is a valid OpenAPI document.
"""

from __future__ import annotations

import copy
import functools
from types import ModuleType
from typing import Any

from webapp import __version__
from webapp.openapi import admin, auth, chat, openai_api
from webapp.openapi.components import (
    ERROR_RESPONSES,
    OPENAPI_VERSION,
    SECURITY_SCHEMES,
    SHARED_SCHEMAS,
    json_response,
    ok,
    responses,
)
from webapp.services_list import SERVICE_NAMES

__all__ = [
    "DOCUMENTED_SERVICES",
    "DOCUMENTS",
    "OPENAI_DOCUMENT",
    "api_prefix",
    "build_document",
    "documents_of",
]

Document = dict[str, Any]

DOCUMENTED_SERVICES = SERVICE_NAMES
OPENAI_DOCUMENT = "openai"
DOCUMENTS = (*SERVICE_NAMES, OPENAI_DOCUMENT)
"""Every document: one per service, named after it, and the OpenAI-compatible API's."""
# The documents a service serves besides its own.
_MORE_DOCUMENTS = {"chat": (OPENAI_DOCUMENT,)}

_MODULES: dict[str, ModuleType] = {
    "auth": auth,
    "chat": chat,
    "admin": admin,
    OPENAI_DOCUMENT: openai_api,
}

_SUMMARIES = {
    "auth": "Accounts, tokens and browser sessions.",
    "chat": "Conversations with the bot, with replies as JSON or streamed as Server-Sent Events.",
    "admin": "The operators' console: statistics and user management, for admins only.",
}

_OPERATIONS_TAG = {
    "name": "operations",
    "description": (
        "Probes and metrics for the operator. They are served on the service's own port and"
        " are not routed by the public proxy."
    ),
}

_PROBE_PATHS: Document = {
    "/health": {
        "get": {
            "tags": ["operations"],
            "operationId": "health",
            "summary": "Liveness: the process answers (touches no dependency)",
            "security": [],
            "responses": responses(ok("Health", "Alive.")),
        }
    },
    "/ready": {
        "get": {
            "tags": ["operations"],
            "operationId": "ready",
            "summary": "Readiness: the database and Redis answer",
            "security": [],
            "responses": responses(
                {
                    "200": json_response("Readiness", "Ready."),
                    "503": json_response(
                        "Readiness", "A dependency does not answer; `checks` says which."
                    ),
                }
            ),
        }
    },
    "/metrics": {
        "get": {
            "tags": ["operations"],
            "operationId": "metrics",
            "summary": "Prometheus metrics of every worker of the service",
            "description": (
                "For the scraper on the private network. Through the public proxy (nginx) it"
                " is a 404 in the error shape, and a request relayed by any proxy"
                " (`X-Forwarded-For` present) gets 404 from the service."
            ),
            "security": [],
            "responses": responses(
                {
                    "200": {
                        "description": "The Prometheus text exposition format (or OpenMetrics,"
                        " when the `Accept` header asks for it).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                "404",
            ),
        }
    },
}


def documents_of(service: str) -> tuple[str, ...]:
    """Return the documents a service serves: its own, then the others its routes need.

    Args:
        service: One of ``DOCUMENTED_SERVICES``, or "all".

    Returns:
        The documents' names (``DOCUMENTS`` for "all").
    """
    if service not in DOCUMENTED_SERVICES:
        return DOCUMENTS
    return (service, *_MORE_DOCUMENTS.get(service, ()))


def api_prefix(document: str) -> str:
    """Return the URL prefix of a document's API, where its document and docs page are served.

    Args:
        document: One of ``DOCUMENTS``.

    Returns:
        ``/api/v1/<service>``, or ``/v1`` for the OpenAI-compatible API.
    """
    if document == OPENAI_DOCUMENT:
        return "/v1"
    return f"/api/v1/{document}"


def _docs_paths(service: str) -> Document:
    prefix = api_prefix(service)
    return {
        f"{prefix}/openapi.json": {
            "get": {
                "tags": ["operations"],
                "operationId": "openapiDocument",
                "summary": "This OpenAPI document",
                "security": [],
                "responses": responses(
                    {
                        "200": {
                            "description": "The document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "304": {"description": "Unchanged since the `ETag` the client sent."},
                    }
                ),
            }
        },
        f"{prefix}/docs": {
            "get": {
                "tags": ["operations"],
                "operationId": "docs",
                "summary": "This document, rendered for reading (works offline)",
                "security": [],
                "responses": responses(
                    {
                        "200": {
                            "description": "An HTML page; its scripts and styles come from this"
                            " service, nothing from another host.",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    }
                ),
            }
        },
    }


@functools.cache
def _build(service: str) -> Document:
    if service not in _MODULES:
        msg = f"no OpenAPI document for service {service!r}"
        raise ValueError(msg)
    module = _MODULES[service]
    if service == OPENAI_DOCUMENT:
        return _build_openai()
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"Chat bot {service} API",
            "version": __version__,
            "summary": _SUMMARIES[service],
            "description": (
                "Every request and response body is JSON (except the event stream of a reply"
                " and the metrics), and every error has the shape"
                ' `{"error": {"code": "...", "message": "...", "field": "..."}}`, `field` only'
                " when one input field is to blame. API clients send the access token as"
                " `Authorization: Bearer`; the web UI uses the same tokens in HttpOnly cookies"
                " with a CSRF header on unsafe methods."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/", "description": "The host that serves this document."}],
        "tags": [*module.TAGS, _OPERATIONS_TAG],
        "paths": {**module.PATHS, **_docs_paths(service), **_PROBE_PATHS},
        "components": {
            "schemas": {**SHARED_SCHEMAS, **module.SCHEMAS},
            "responses": ERROR_RESPONSES,
            "securitySchemes": {**SECURITY_SCHEMES, **module.SECURITY_SCHEMES},
        },
    }


def _build_openai() -> Document:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Chat bot OpenAI-compatible API",
            "version": __version__,
            "summary": openai_api.SUMMARY,
            "description": openai_api.DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/", "description": "The host that serves this document."}],
        "tags": [*openai_api.TAGS, _OPERATIONS_TAG],
        # Served by the chat service, whose document has the probes.
        "paths": {**openai_api.PATHS, **_docs_paths(OPENAI_DOCUMENT)},
        "components": {
            "schemas": openai_api.SCHEMAS,
            "responses": openai_api.RESPONSES,
            "securitySchemes": openai_api.SECURITY_SCHEMES,
        },
    }


def build_document(service: str) -> Document:
    """Return the OpenAPI document of a service.

    Args:
        service: One of ``DOCUMENTS`` (a service's, or ``openai``).

    Returns:
        A new copy of the document (callers may change it).

    Raises:
        ValueError: If the service has no document.
    """
    return copy.deepcopy(_build(service))
