"""OpenAPI paths and schemas of personal API keys: the owner's routes and the admins'.

Merged into the auth and admin documents (:mod:`webapp.openapi.auth`, :mod:`webapp.openapi.admin`).
The keys themselves authenticate only ``/v1``, documented in :mod:`webapp.openapi.openai_api`.
"""

from __future__ import annotations

from typing import Any

from webapp.models import ApiKey, User, max_id
from webapp.openapi.components import (
    Operations,
    admin_operation,
    all_required,
    created,
    no_content,
    ok,
    ref,
)
from webapp.openapi.from_models import query_parameters, request_body, schemas
from webapp.request_models import admin as admin_models
from webapp.request_models import auth as auth_models
from webapp.services import api_keys

__all__ = ["ADMIN_PATHS", "ADMIN_SCHEMAS", "AUTH_PATHS", "AUTH_SCHEMAS"]

Document = dict[str, Any]

_TIMESTAMP = {"type": "string", "format": "date-time"}
_NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
_KEY_ID = {
    "name": "api_key_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": max_id(ApiKey.id)},
}
_KEY_PROPERTIES: Document = {
    "id": {"type": "integer", "minimum": 1},
    "name": {"type": "string", "maxLength": api_keys.NAME_MAX_LENGTH},
    "prefix": {
        "type": "string",
        "minLength": api_keys.PREFIX_LENGTH,
        "maxLength": api_keys.PREFIX_LENGTH,
        "description": "The key's first characters, to tell keys apart (`cbk_` and 8 more).",
    },
    "created_at": _TIMESTAMP,
    "expires_at": {**_NULLABLE_TIMESTAMP, "description": "Null: the key never expires."},
    "last_used_at": {
        **_NULLABLE_TIMESTAMP,
        "description": "The last request it authenticated, to the minute; null: never used.",
    },
}

AUTH_SCHEMAS: dict[str, Document] = {
    **schemas(auth_models.ApiKeyCreate),
    "ApiKey": all_required(_KEY_PROPERTIES, description="Never the key itself, nor its hash."),
    "ApiKeyList": all_required(
        {"api_keys": {"type": "array", "items": ref("ApiKey"), "description": "Oldest first."}}
    ),
    "NewApiKey": all_required(
        {
            "api_key": ref("ApiKey"),
            "key": {
                "type": "string",
                "pattern": f"^{api_keys.KEY_PREFIX}[A-Za-z0-9_-]{{40}}$",
                "description": "The key, shown this once: only its hash is stored. Send it as"
                " `Authorization: Bearer` to `/v1`.",
            },
        }
    ),
}

ADMIN_SCHEMAS: dict[str, Document] = {
    "AdminApiKey": all_required(
        {
            **_KEY_PROPERTIES,
            "user_id": {"type": "integer", "minimum": 1, "maximum": max_id(User.id)},
            "user_email": {"type": "string", "format": "email"},
        },
        description="A key with its owner; never the key itself, nor its hash.",
    ),
    "AdminApiKeyList": all_required(
        {
            "api_keys": {
                "type": "array",
                "items": ref("AdminApiKey"),
                "description": "Oldest first.",
            }
        }
    ),
}

_auth_operation = Operations("auth", errors=("401", "429"))

AUTH_PATHS: Document = {
    "/api/v1/auth/api-keys": {
        "post": _auth_operation(
            "createApiKey",
            "Create a personal API key for the OpenAI-compatible API (`/v1`)",
            created("NewApiKey", "The key, shown this once."),
            "403",
            "409",
            description=(
                "The key authenticates `/v1` only (never `/api/v1`), as its owner, until it"
                " expires or is revoked, or the account is disabled. Recorded in the audit log"
                f" (`api_key.create`). At most {api_keys.MAX_KEYS_PER_USER} keys per user"
                " (409)."
            ),
            body=request_body(auth_models.ApiKeyCreate, description="The key's name and expiry."),
        ),
        "get": _auth_operation(
            "listApiKeys",
            "List the caller's API keys",
            ok("ApiKeyList", "The keys that are not revoked, expired ones included."),
        ),
    },
    "/api/v1/auth/api-keys/{api_key_id}": {
        "parameters": [{**_KEY_ID, "description": "One of the caller's keys; others' are 404."}],
        "delete": _auth_operation(
            "revokeApiKey",
            "Revoke one of the caller's API keys",
            no_content("Revoked: the key stops working at once."),
            "403",
            "404",
            description="Recorded in the audit log (`api_key.revoke`).",
        ),
    },
}

ADMIN_PATHS: Document = {
    "/api/v1/admin/api-keys": {
        "get": admin_operation(
            "adminListApiKeys",
            "List every user's API keys, with their owners",
            ok("AdminApiKeyList", "The keys that are not revoked."),
            "400",
            parameters=query_parameters(admin_models.ApiKeyListQuery),
        )
    },
    "/api/v1/admin/api-keys/{api_key_id}": {
        "parameters": [_KEY_ID],
        "delete": admin_operation(
            "adminRevokeApiKey",
            "Revoke anyone's API key",
            no_content("Revoked: the key stops working at once."),
            "404",
            description="Recorded in the audit log (`api_key.revoke`, the admin as actor).",
        ),
    },
}
