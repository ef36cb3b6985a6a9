"""OpenAPI paths and schemas of the admin service (``/api/v1/admin``)."""

from __future__ import annotations

from typing import Any

from webapp.openapi.components import USER_AUTH, json_response, responses

__all__ = ["PATHS", "SCHEMAS", "SECURITY_SCHEMES", "TAGS"]

Document = dict[str, Any]

TAGS: list[Document] = [
    {"name": "admin", "description": "The operators' console; every route is for admins only."},
]

SECURITY_SCHEMES: Document = {}

_USER_ID = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647},
}

SCHEMAS: dict[str, Document] = {
    "Stats": {
        "type": "object",
        "required": ["users", "conversations", "messages"],
        "properties": {
            "users": {"type": "integer", "minimum": 0},
            "conversations": {"type": "integer", "minimum": 0},
            "messages": {"type": "integer", "minimum": 0},
        },
    },
}


def _set_active(*, enable: bool) -> Document:
    verb = "enable" if enable else "disable"
    effect = (
        "The user can sign in again; tokens from before the account was disabled stay revoked."
        if enable
        else "Sign-in is refused and every token the user holds stops working at once. The"
        " last active admin cannot be disabled (409)."
    )
    return {
        "post": {
            "tags": ["admin"],
            "operationId": f"{verb}User",
            "summary": f"{verb.capitalize()} a user",
            "description": effect,
            "security": USER_AUTH,
            "responses": responses(
                {"200": json_response("UserEnvelope", "The user, updated.")},
                "401",
                "403",
                "404",
                # Only disabling can conflict: the last active admin must stay.
                *(() if enable else ("409",)),
                "429",
            ),
        }
    }


PATHS: Document = {
    "/api/v1/admin/stats": {
        "get": {
            "tags": ["admin"],
            "operationId": "getStats",
            "summary": "Counts of users, conversations and messages",
            "security": USER_AUTH,
            "responses": responses(
                {"200": json_response("Stats", "The counts.")}, "401", "403", "429"
            ),
        }
    },
    "/api/v1/admin/users/{user_id}/disable": {
        "parameters": [_USER_ID],
        **_set_active(enable=False),
    },
    "/api/v1/admin/users/{user_id}/enable": {
        "parameters": [_USER_ID],
        **_set_active(enable=True),
    },
}
