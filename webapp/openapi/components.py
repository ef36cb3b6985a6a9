"""Pieces of the OpenAPI documents that every service shares.

The schemas mirror what the code returns (`webapp.errors.error_body`, the ``*_to_dict``
functions of the services); tests validate real responses against them.
"""

from __future__ import annotations

from typing import Any

from webapp.services_list import ALL, SERVICE_NAMES

__all__ = [
    "ERROR_RESPONSES",
    "SECURITY_SCHEMES",
    "SHARED_SCHEMAS",
    "USER_AUTH",
    "error_response",
    "json_response",
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


def responses(success: dict[str, Document], *errors: str) -> Document:
    """Return an operation's ``responses``: its successes, then the named shared errors.

    Args:
        success: Status code to response object for the successful outcomes.
        *errors: Status codes of shared error responses (keys of ``ERROR_RESPONSES``).

    Returns:
        The responses object, with ``default`` for any other error (500 and the like).
    """
    result = dict(success)
    for status in errors:
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

SHARED_SCHEMAS: dict[str, Document] = {
    "Error": {
        "type": "object",
        "description": "The one shape of every API error.",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": ref("ErrorDetail")},
    },
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
    "User": {
        "type": "object",
        "required": ["id", "email", "display_name", "role", "is_active", "created_at"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "display_name": {"type": "string", "maxLength": 100},
            "role": {"type": "string", "enum": ["user", "admin"]},
            "is_active": {
                "type": "boolean",
                "description": "False once an admin disabled the account.",
            },
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "UserEnvelope": {
        "type": "object",
        "required": ["user"],
        "properties": {"user": ref("User")},
    },
    "Health": {
        "type": "object",
        "required": ["status", "service", "version", "release"],
        "properties": {
            "status": {"const": "ok"},
            "service": {"type": "string", "enum": [*SERVICE_NAMES, ALL]},
            "version": {"type": "string", "description": "The app package's version."},
            "release": {
                "type": ["string", "null"],
                "description": "The deployed release (`<version>-<source hash>`) answering;"
                " null outside a release directory.",
            },
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "service", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "service": {"type": "string", "enum": [*SERVICE_NAMES, ALL]},
            "checks": {
                "type": "object",
                "required": ["database", "redis"],
                "properties": {
                    "database": {"type": "string", "enum": ["ok", "unavailable"]},
                    "redis": {"type": "string", "enum": ["ok", "unavailable"]},
                },
            },
            "error": {
                **ref("ErrorDetail"),
                "description": "Present when not ready: `service_unavailable`, naming the"
                " dependencies that do not answer.",
            },
        },
    },
}
