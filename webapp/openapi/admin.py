"""OpenAPI paths and schemas of the admin service (``/api/v1/admin``).

``PATHS`` and ``SCHEMAS`` are plain dicts: the webhook routes (:mod:`webapp.openapi.admin_webhooks`)
are merged into them at the end of this module.
"""

from __future__ import annotations

from typing import Any

from webapp.models import User, max_id
from webapp.openapi import admin_catalogue, admin_webhooks, api_keys
from webapp.openapi import chat as chat_document
from webapp.openapi.components import (
    SHARED_SCHEMAS,
    admin_operation,
    all_required,
    envelope,
    ok,
    page,
    ref,
)
from webapp.openapi.from_models import query_parameters, request_body, schemas
from webapp.request_models import admin as models
from webapp.services import audit, users_admin

__all__ = ["PATHS", "SCHEMAS", "SECURITY_SCHEMES", "TAGS"]

Document = dict[str, Any]

TAGS: list[Document] = [
    {"name": "admin", "description": "The operators' console; every route is for admins only."},
]

SECURITY_SCHEMES: Document = {}

_MAX_INT = max_id(User.id)
_USER_ID = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_INT},
}
_CONVERSATION_ID = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "description": "A conversation of this user's; anyone else's is a 404.",
    "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_INT},
}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_DAY = {"type": "string", "format": "date"}
_COUNT = {"type": "integer", "minimum": 0}

_USAGE_FIGURES = {
    "messages": {**_COUNT, "description": "Messages users sent."},
    "replies": {**_COUNT, "description": "Assistant messages, whatever their status."},
    "tokens_in": {**_COUNT, "description": "Prompt tokens of the replies."},
    "tokens_out": {**_COUNT, "description": "Tokens of the answers."},
}
_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_MILLISECONDS = {"type": ["number", "null"], "minimum": 0}
_COST = {
    "type": ["string", "null"],
    "description": "tokens_in x input price / 1M + tokens_out x output price / 1M over the"
    " replies of models the catalogue prices (at today's prices), as an exact decimal in the"
    " prices' currency; null when none was priced.",
    "examples": ["0.0123"],
}

SCHEMAS: dict[str, Document] = {
    **schemas(models.UserUpdate, models.PasswordReset),
    # A user as admins see them: the public fields and the daily token quota.
    "AdminUser": all_required(
        {
            **SHARED_SCHEMAS["User"]["properties"],
            "daily_token_quota": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": users_admin.QUOTA_MAX,
                "description": "Tokens (in + out) a UTC day; 0: unlimited; null: the global"
                " LLM_DAILY_TOKEN_QUOTA.",
            },
        }
    ),
    "AdminUserEnvelope": envelope("user", "AdminUser"),
    "Stats": all_required(
        {
            "users": _COUNT,
            "conversations": _COUNT,
            "messages": _COUNT,
        }
    ),
    "UserList": page("users", "AdminUser", "In id order."),
    "UserUsage": all_required(
        {
            "conversations": _COUNT,
            **_USAGE_FIGURES,
            "quota_tokens_today": {
                **_COUNT,
                "description": "Tokens today's daily quota counted (UTC day).",
            },
            "last_message_at": {"type": ["string", "null"], "format": "date-time"},
        }
    ),
    "UserDetail": all_required({"user": ref("AdminUser"), "usage": ref("UserUsage")}),
    "PasswordResetResult": {
        "type": "object",
        "required": ["user"],
        "properties": {
            "user": ref("AdminUser"),
            "password": {
                "type": "string",
                "description": "The generated password (only when none was given). It is in"
                " this response only: neither stored in clear nor logged. Hand it over"
                " securely.",
            },
        },
    },
    "DeletedUser": all_required(
        {
            "deleted": all_required(
                {
                    "id": {"type": "integer", "minimum": 1},
                    "email": {"type": "string", "format": "email"},
                    "conversations": _COUNT,
                    "messages": _COUNT,
                }
            )
        }
    ),
    "AuditEvent": all_required(
        {
            "id": {"type": "integer", "minimum": 1},
            "created_at": _TIMESTAMP,
            "action": {
                "type": "string",
                "description": "Dotted name; see docs/admin.md for the list.",
                "examples": list(audit.ACTIONS),
            },
            "actor_id": {
                "type": ["integer", "null"],
                "description": "Who acted (null for anonymous events such as failed logins);"
                " kept when the account is deleted.",
            },
            "actor_email": {
                "type": ["string", "null"],
                "description": "The actor's email address at the time.",
            },
            "target_type": {"type": ["string", "null"], "examples": ["user", "session", "email"]},
            "target_id": {"type": ["string", "null"]},
            "source_ip": {
                "type": ["string", "null"],
                "description": "The client's address (behind nginx: from X-Forwarded-For).",
            },
            "details": {"type": "object", "description": "Secrets are never stored here."},
        }
    ),
    "AuditEventList": page("events", "AuditEvent", "Newest first."),
    "UsageReport": all_required(
        {
            "since": _DAY,
            "until": _DAY,
            "user_id": {"type": ["integer", "null"]},
            "totals": all_required(
                {
                    **_USAGE_FIGURES,
                    "failed_replies": _COUNT,
                    "cache_hit_rate": {
                        **_RATE,
                        "description": "Share of replies served from the cache (null: none).",
                    },
                    "fallback_rate": {
                        **_RATE,
                        "description": "Share of replies the fallback model wrote.",
                    },
                    "latency_p50_ms": {
                        **_MILLISECONDS,
                        "description": "Median generation time of replies a model produced"
                        " (cache hits excluded).",
                    },
                    "latency_p95_ms": _MILLISECONDS,
                    "quota_tokens": {
                        **_COUNT,
                        "description": "Tokens the daily quota counted in the range; kept when"
                        " conversations are deleted, not counting cache hits.",
                    },
                }
            ),
            "days": {
                "type": "array",
                "description": "Days with any activity, oldest first.",
                "items": all_required({"day": _DAY, **_USAGE_FIGURES, "quota_tokens": _COUNT}),
            },
            "models": {
                "type": "array",
                "description": "Per model that wrote replies, most replies first.",
                "items": all_required(
                    {
                        "model": {"type": ["string", "null"]},
                        "replies": _COUNT,
                        "tokens_in": _COUNT,
                        "tokens_out": _COUNT,
                        "cached": _COUNT,
                        "fallback": _COUNT,
                        "cost": _COST,
                    }
                ),
            },
            "top_users": {
                "type": "array",
                "description": "Most tokens first.",
                "items": all_required(
                    {
                        "user_id": {"type": "integer", "minimum": 1},
                        "email": {"type": "string"},
                        "display_name": {"type": "string"},
                        **_USAGE_FIGURES,
                        "cost": _COST,
                    }
                ),
            },
        }
    ),
    "ComponentStatus": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "latency_ms": {"type": "number", "minimum": 0},
            "error": {
                "type": "string",
                "description": "Why not: an exception class name or an HTTP status, never a"
                " message (messages can carry host names or part of a key).",
            },
            "url": {"type": "string", "description": "Of a service: its base URL."},
            "provider": {"type": "string", "enum": ["offline", "openai", "openai-compatible"]},
            "model": {"type": "string"},
            "model_listed": {
                "type": "boolean",
                "description": "The provider's model list names LLM_MODEL.",
            },
            "migration": {
                "type": ["object", "null"],
                "required": ["current", "head", "up_to_date"],
                "properties": {
                    "current": {"type": ["string", "null"]},
                    "head": {"type": ["string", "null"]},
                    "up_to_date": {"type": "boolean"},
                },
            },
        },
    },
    "SystemStatus": all_required(
        {
            "status": {
                "type": "string",
                "enum": ["ok", "degraded"],
                "description": "`ok` when every part is and the schema is at the head revision.",
            },
            "version": {"type": "string"},
            "database": ref("ComponentStatus"),
            "redis": ref("ComponentStatus"),
            "model": ref("ComponentStatus"),
            "providers": {
                "type": "array",
                "description": "Every provider of the catalogue (managed first), asked for its"
                " model list with a short timeout; the built-in `offline` one is always `ok`.",
                "items": {
                    "type": "object",
                    "required": ["name", "kind", "managed", "status"],
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string", "enum": ["openai", "offline"]},
                        "managed": {"type": "boolean"},
                        "status": {"type": "string", "enum": ["ok", "unavailable"]},
                        "latency_ms": {"type": "number", "minimum": 0},
                        "error": {
                            "type": "string",
                            "description": "An HTTP status or an exception class name.",
                        },
                    },
                },
            },
            "services": {
                "type": "object",
                "description": "Each service's `/health`, at the URLs of STATUS_SERVICE_URLS.",
                "additionalProperties": ref("ComponentStatus"),
            },
        }
    ),
}
# The conversation shapes are the chat API's: an admin reads what the user sees.
for _name in (
    "Conversation",
    "ConversationList",
    "ConversationWithMessages",
    "ConversationDetailEnvelope",
    "Message",
):
    SCHEMAS[_name] = chat_document.SCHEMAS[_name]


def _set_active(*, enable: bool) -> Document:
    verb = "enable" if enable else "disable"
    effect = (
        "The user can sign in again; tokens from before the account was disabled stay revoked."
        if enable
        else "Sign-in is refused and every token the user holds stops working at once. The"
        " last active admin cannot be disabled (409)."
    )
    return {
        "post": admin_operation(
            f"{verb}User",
            f"{verb.capitalize()} a user",
            ok("AdminUserEnvelope", "The user, updated."),
            "404",
            # Only disabling can conflict: the last active admin must stay.
            *(() if enable else ("409",)),
            description=effect + f" Recorded in the audit log (`admin.user_{verb}d`).",
        )
    }


PATHS: Document = {
    "/api/v1/admin/stats": {
        "get": admin_operation(
            "getStats",
            "Counts of users, conversations and messages",
            ok("Stats", "The counts."),
        )
    },
    "/api/v1/admin/status": {
        "get": admin_operation(
            "getSystemStatus",
            "State of the database, Redis, model providers, migrations and services",
            ok("SystemStatus", "Each part's state (200 even when degraded)."),
            description="Every check is bounded by a short timeout. The model provider is asked"
            " for its model list (the key is never shown); the built-in offline model is"
            " always `ok`.",
        )
    },
    "/api/v1/admin/usage": {
        "get": admin_operation(
            "getUsage",
            "Messages, tokens, cache and fallback rates, latency, top users",
            ok("UsageReport", "The figures of the range."),
            "400",
            description="Computed from the stored messages, by UTC day. Unknown or repeated"
            " parameters are a 400 naming them.",
            parameters=query_parameters(models.UsageQuery),
        )
    },
    "/api/v1/admin/audit": {
        "get": admin_operation(
            "listAuditEvents",
            "The audit log, newest first",
            ok("AuditEventList", "A page of events."),
            "400",
            description="Append-only: the database refuses to change or delete an event.",
            parameters=query_parameters(models.AuditQuery),
        )
    },
    "/api/v1/admin/users": {
        "get": admin_operation(
            "listUsers",
            "Find users",
            ok("UserList", "A page of users."),
            "400",
            parameters=query_parameters(models.UserListQuery),
        )
    },
    "/api/v1/admin/users/{user_id}": {
        "parameters": [_USER_ID],
        "get": admin_operation(
            "getUser",
            "A user with a summary of their usage",
            ok("UserDetail", "The user."),
            "404",
        ),
        "patch": admin_operation(
            "changeUserRole",
            "Promote or demote a user, or set their daily token quota",
            ok("AdminUserEnvelope", "The user, updated."),
            "404",
            "409",
            description="A role takes effect on the user's next request. The last active admin"
            " cannot be demoted (409). Recorded as `admin.role_changed` and"
            " `admin.quota_changed`.",
            body=request_body(models.UserUpdate, description="The role and/or the quota."),
        ),
        "delete": admin_operation(
            "deleteUser",
            "Delete a user with their conversations",
            ok("DeletedUser", "What was deleted."),
            "404",
            "409",
            description="Their conversations, messages and daily usage rows go with them; the"
            " audit log keeps every event about them. The last active admin cannot be deleted"
            " (409). Recorded as `admin.user_deleted`.",
        ),
    },
    "/api/v1/admin/users/{user_id}/disable": {
        "parameters": [_USER_ID],
        **_set_active(enable=False),
    },
    "/api/v1/admin/users/{user_id}/enable": {
        "parameters": [_USER_ID],
        **_set_active(enable=True),
    },
    "/api/v1/admin/users/{user_id}/password": {
        "parameters": [_USER_ID],
        "post": admin_operation(
            "resetUserPassword",
            "Reset a user's password",
            ok("PasswordResetResult", "The user (and a generated password)."),
            "404",
            description="Every session of the user ends at once. Recorded as"
            " `admin.password_reset` (never with the password).",
            body=request_body(
                models.PasswordReset,
                description="The password to set, or `{}` (or no body) for a generated one.",
                required=False,
            ),
        ),
    },
    "/api/v1/admin/users/{user_id}/conversations": {
        "parameters": [_USER_ID],
        "get": admin_operation(
            "listUserConversations",
            "A user's conversations (read-only)",
            ok("ConversationList", "A page, as the user would see it."),
            "400",
            "404",
            parameters=query_parameters(models.UserConversationsQuery),
        ),
    },
    "/api/v1/admin/users/{user_id}/conversations/{conversation_id}": {
        "parameters": [_USER_ID, _CONVERSATION_ID],
        "get": admin_operation(
            "getUserConversation",
            "One of a user's conversations with its messages (read-only)",
            ok("ConversationDetailEnvelope", "The conversation."),
            "404",
            description="Every read is recorded in the audit log (`admin.conversation_viewed`).",
        ),
    },
}

# The webhook and catalogue routes, registered on the same blueprint by webapp/admin/webhooks.py
# and webapp/admin/catalogue.py.
PATHS.update(admin_webhooks.PATHS)
SCHEMAS.update(admin_webhooks.SCHEMAS)
PATHS.update(admin_catalogue.PATHS)
SCHEMAS.update(admin_catalogue.SCHEMAS)
# The API key routes, registered on the same blueprint by webapp/admin/api_keys.py.
PATHS.update(api_keys.ADMIN_PATHS)
SCHEMAS.update(api_keys.ADMIN_SCHEMAS)
