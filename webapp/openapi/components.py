"""Pieces of the OpenAPI documents that the services share, and the builders of their parts.

The schemas mirror what the code returns (`webapp.errors.error_body`, the ``*_to_dict``
functions of the services); tests validate real responses against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.services_list import ALL, SERVICE_NAMES

__all__ = [
    "BODY_ERRORS",
    "ERROR_RESPONSES",
    "SECURITY_SCHEMES",
    "SHARED_SCHEMAS",
    "USER_AUTH",
    "Operations",
    "accepted",
    "admin_operation",
    "all_required",
    "created",
    "envelope",
    "error_response",
    "json_response",
    "no_content",
    "ok",
    "page",
    "ref",
    "responses",
]

Document = dict[str, Any]

OPENAPI_VERSION = "3.1.0"


def ref(name: str) -> Document:
    """Return a reference to a schema in ``components/schemas``.

    Args:
        name: The schema's name.

    Returns:
        ``{"$ref": "#/components/schemas/<name>"}``.
    """
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: str, description: str, **extra: Any) -> Document:
    """Return a response object of ``application/json`` with a schema from the components.

    Args:
        schema: Name of the body's schema.
        description: When the response is given.
        **extra: More fields of the response object (``headers``).

    Returns:
        The response object.
    """
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(schema)}},
        **extra,
    }


def _json_outcome(status: str, schema: str, description: str, **extra: Any) -> dict[str, Document]:
    return {status: json_response(schema, description, **extra)}


def ok(schema: str, description: str, **extra: Any) -> dict[str, Document]:
    """Return an operation's own responses when it has one outcome: a 200 with a JSON body.

    Args:
        schema: Name of the body's schema.
        description: When the response is given.
        **extra: More fields of the response object (``headers``).

    Returns:
        ``{"200": <the response object>}``.
    """
    return _json_outcome("200", schema, description, **extra)


def created(schema: str, description: str) -> dict[str, Document]:
    """Return an operation's own responses when it has one outcome: a 201 with a JSON body."""
    return _json_outcome("201", schema, description)


def accepted(schema: str, description: str) -> dict[str, Document]:
    """Return an operation's own responses when it has one outcome: a 202 with a JSON body."""
    return _json_outcome("202", schema, description)


def no_content(description: str) -> dict[str, Document]:
    """Return an operation's own responses when it has one outcome: a 204 without a body."""
    return {"204": {"description": description}}


def error_response(name: str) -> Document:
    """Return a reference to a shared error response in ``components/responses``.

    Args:
        name: One of ``ERROR_RESPONSES``.

    Returns:
        ``{"$ref": "#/components/responses/<name>"}``.
    """
    if name not in ERROR_RESPONSES:
        msg = f"unknown error response {name!r}"
        raise KeyError(msg)
    return {"$ref": f"#/components/responses/{name}"}


def all_required(properties: Document, **fields: Any) -> Document:
    """Return the schema of an object whose every property is required.

    Args:
        properties: Each property's schema, by name (in the order the code writes them).
        **fields: More fields of the schema (``description``, ``additionalProperties``).

    Returns:
        The object schema, ``required`` listing every property.
    """
    return {"type": "object", **fields, "required": list(properties), "properties": properties}


def envelope(key: str, schema: str) -> Document:
    """Return the schema of an object that carries one ``schema`` under ``key``.

    Args:
        key: The one property (``"user"``).
        schema: Name of its schema (``"User"``).

    Returns:
        The object schema, ``key`` required.
    """
    return all_required({key: ref(schema)})


def page(key: str, item: str, description: str | None = None) -> Document:
    """Return the schema of one page of a list that is read a page at a time by cursor.

    Args:
        key: The property holding the page's items (``"users"``).
        item: Name of an item's schema.
        description: The items' order, when it is worth saying.

    Returns:
        The object schema: the items and ``next_cursor``, both required.
    """
    items: Document = {"type": "array", "items": ref(item)}
    if description:
        items["description"] = description
    return all_required(
        {
            key: items,
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        }
    )


def responses(own: dict[str, Document], *errors: str) -> Document:
    """Return an operation's ``responses``: its own, then the named shared errors.

    Args:
        own: Status code to response object: the successful outcomes, and any error this
            operation describes its own way (it replaces the shared one of that status).
        *errors: Status codes of shared error responses (keys of ``ERROR_RESPONSES``); a
            repeated one counts once.

    Returns:
        The responses object, errors in numeric order, with ``default`` for any other error
        (500 and the like).
    """
    result = dict(own)
    for status in sorted(set(errors) - set(own), key=int):
        result[status] = error_response(status)
    result["default"] = error_response("default")
    return result


def _error(description: str, *codes: str, headers: Document | None = None) -> Document:
    response: Document = {
        "description": f"{description} Error codes: {', '.join(f'`{c}`' for c in codes)}.",
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


ERROR_RESPONSES: dict[str, Document] = {
    "400": _error(
        "The request is malformed or a field is invalid; `field` names it.",
        "validation_error",
        "bad_request",
    ),
    "401": _error(
        "Not authenticated: the token or cookie is missing, malformed, expired, revoked, of the"
        " wrong type, or its account is disabled; or the credentials are wrong.",
        "unauthorized",
    ),
    "403": _error(
        "Not allowed: not an admin, a wrong current password (`field` names it), a disabled"
        " account, or a cookie-authenticated request without its CSRF token.",
        "forbidden",
        "account_disabled",
        "csrf_failed",
    ),
    "404": _error(
        "No such resource, or it belongs to someone else (indistinguishable).", "not_found"
    ),
    "409": _error("The request conflicts with existing data.", "conflict"),
    "413": _error("The request body is larger than the service accepts.", "payload_too_large"),
    "415": _error(
        "The request body is not declared as JSON (`Content-Type: application/json`).",
        "unsupported_media_type",
    ),
    "429": _error(
        "Too many requests; retry after the number of seconds in `Retry-After` (also"
        " `retry_after` in the body).",
        "rate_limited",
        headers={
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    ),
    "502": _error("The language model failed to produce a reply.", "upstream_error"),
    "503": _error(
        "Sessions cannot be changed while the token store (Redis) is down; retry shortly.",
        "service_unavailable",
    ),
    "default": _error(
        "Any other error, in the same shape (500 for an unexpected server error).",
        "internal_error",
    ),
}

SECURITY_SCHEMES: Document = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "An access token from `POST /api/v1/auth/login` (HS256 JWT). Refresh tokens are"
            " refused here, except by `POST /api/v1/auth/refresh`, which takes only them."
        ),
    },
    "cookieAuth": {
        "type": "apiKey",
        "in": "cookie",
        "name": "access_token_cookie",
        "description": (
            "The browser session from `POST /api/v1/auth/session`: the same access token in an"
            " HttpOnly, Secure, SameSite cookie. Unsafe methods (POST, PUT, PATCH, DELETE) must"
            " also send the value of the `csrf_access_token` cookie in the `X-CSRF-TOKEN`"
            " header, else 403."
        ),
    },
}

USER_AUTH: list[Document] = [{"bearerAuth": []}, {"cookieAuth": []}]
"""Security requirement of every endpoint that needs a signed-in user: either scheme."""

BODY_ERRORS = ("400", "413", "415")
"""Shared errors of every operation that takes a JSON body: invalid, too large, not JSON."""


@dataclass(frozen=True)
class Operations:
    """Builder of the operations under one tag, which all may give some shared errors.

    Attributes:
        tag: The operations' tag.
        errors: Status codes of the shared errors every operation of the tag may give.
    """

    tag: str
    errors: tuple[str, ...] = ()

    def __call__(
        self,
        operation_id: str,
        summary: str,
        own: dict[str, Document],
        *errors: str,
        description: str | None = None,
        security: list[Document] = USER_AUTH,
        parameters: list[Document] | None = None,
        body: Document | None = None,
    ) -> Document:
        """Return an operation object.

        Args:
            operation_id: The ``operationId``.
            summary: The one-line summary.
            own: The operation's own responses (see :func:`responses`).
            *errors: Its shared errors besides the tag's and, with a body, ``BODY_ERRORS``.
            description: More prose, if any.
            security: The security requirements; ``[]`` for a public operation.
            parameters: Its own parameters (those of its path are the path's).
            body: Its ``requestBody``.

        Returns:
            The operation object.
        """
        operation: Document = {"tags": [self.tag], "operationId": operation_id, "summary": summary}
        if description:
            operation["description"] = description
        operation["security"] = security
        if parameters:
            operation["parameters"] = parameters
        if body is not None:
            operation["requestBody"] = body
            errors = (*BODY_ERRORS, *errors)
        operation["responses"] = responses(own, *self.errors, *errors)
        return operation


admin_operation = Operations("admin", errors=("401", "403", "429"))
"""Builder of the admin service's operations (its users' and its webhooks' routes): each may
answer 401, 403 (not an admin) and 429."""

SHARED_SCHEMAS: dict[str, Document] = {
    "Error": all_required(
        {"error": ref("ErrorDetail")},
        description="The one shape of every API error.",
        additionalProperties=False,
    ),
    "ErrorDetail": {
        "type": "object",
        "required": ["code", "message"],
        "additionalProperties": False,
        "properties": {
            "code": {
                "type": "string",
                "description": "Machine-readable code, such as `validation_error`.",
                "examples": ["validation_error"],
            },
            "message": {
                "type": "string",
                "description": "Human-readable explanation, safe to show.",
                "examples": ["email is required"],
            },
            "field": {
                "type": "string",
                "description": "The input field at fault, when one is.",
                "examples": ["email"],
            },
            "retry_after": {
                "type": "integer",
                "minimum": 0,
                "description": "With `rate_limited`: seconds until a retry can succeed.",
            },
        },
    },
    "User": all_required(
        {
            "id": {"type": "integer", "minimum": 1},
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "display_name": {"type": "string", "maxLength": 100},
            "role": {"type": "string", "enum": ["user", "admin"]},
            "is_active": {
                "type": "boolean",
                "description": "False once an admin disabled the account.",
            },
            "created_at": {"type": "string", "format": "date-time"},
        }
    ),
    "UserEnvelope": envelope("user", "User"),
    "Health": all_required(
        {
            "status": {"const": "ok"},
            "service": {"type": "string", "enum": [*SERVICE_NAMES, ALL]},
            "version": {"type": "string", "description": "The app package's version."},
            "release": {
                "type": ["string", "null"],
                "description": "The deployed release (`<version>-<source hash>`) answering;"
                " null outside a release directory.",
            },
        }
    ),
    "Readiness": {
        "type": "object",
        "required": ["status", "service", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "service": {"type": "string", "enum": [*SERVICE_NAMES, ALL]},
            "checks": all_required(
                {
                    "database": {"type": "string", "enum": ["ok", "unavailable"]},
                    "redis": {"type": "string", "enum": ["ok", "unavailable"]},
                }
            ),
            "error": {
                **ref("ErrorDetail"),
                "description": "Present when not ready: `service_unavailable`, naming the"
                " dependencies that do not answer.",
            },
        },
    },
}
