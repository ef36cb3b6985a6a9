"""OpenAPI paths and schemas of the model catalogue's admin routes (providers and models)."""

from __future__ import annotations

from typing import Any

from webapp.models import USER_ROLES, ChatModel, Provider, max_id
from webapp.openapi.components import (
    admin_operation,
    all_required,
    created,
    envelope,
    no_content,
    ok,
    ref,
)
from webapp.openapi.from_models import query_parameters, request_body, schemas
from webapp.request_models import admin as admin_models
from webapp.request_models import catalogue as models
from webapp.services import catalogue_fields as rules
from webapp.services.catalogue_admin import MASK
from webapp.services.provider_requests import REPLY_EXCERPT_CHARS, TEST_MAX_TOKENS

__all__ = ["PATHS", "SCHEMAS"]

Document = dict[str, Any]

_PREFIX = "/api/v1/admin"
_PROVIDER_ID = {
    "name": "provider_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": max_id(Provider.id)},
}
_MODEL_ID = {
    "name": "model_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": max_id(ChatModel.id)},
}
_STORED_TIME = {
    "type": ["string", "null"],
    "format": "date-time",
    "description": "Null for a managed entry.",
}
_ID = {
    "type": ["integer", "null"],
    "minimum": 1,
    "description": "Null for a managed entry (from the settings, read-only).",
}
_MANAGED = {
    "type": "boolean",
    "description": "From the settings (the built-in `offline` model, the `environment`"
    " provider of OPENAI_BASE_URL/OPENAI_API_KEY with LLM_MODEL and LLM_FALLBACK_MODEL):"
    " listed, never changed here.",
}
_PRICE = {
    "type": ["string", "null"],
    "description": "Currency units per 1M tokens, as an exact decimal; null: no price.",
    "examples": ["0.15"],
}
_COUNT = {"type": ["integer", "null"], "minimum": 1}

SCHEMAS: dict[str, Document] = {
    **schemas(models.ProviderCreate, models.ProviderUpdate, models.ModelCreate, models.ModelUpdate),
    "Provider": all_required(
        {
            "id": _ID,
            "name": {"type": "string", "maxLength": rules.PROVIDER_NAME_MAX_LENGTH},
            "kind": {
                "type": "string",
                "enum": ["openai", "offline"],
                "description": "`openai`: any OpenAI-compatible server; `offline`: the"
                " built-in model.",
            },
            "base_url": {"type": "string"},
            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
            "extra_headers": {
                "type": "object",
                "additionalProperties": {"const": MASK},
                "description": "The names of the extra headers; their values are never shown.",
            },
            "api_key": all_required(
                {
                    "set": {"type": "boolean"},
                    "last4": {
                        "type": ["string", "null"],
                        "description": "The key's last 4 characters (null for a key shorter"
                        " than 8); the key itself is never returned.",
                    },
                }
            ),
            "managed": _MANAGED,
            "created_at": _STORED_TIME,
            "updated_at": _STORED_TIME,
        }
    ),
    "ProviderEnvelope": envelope("provider", "Provider"),
    "ProviderList": all_required(
        {
            "providers": {
                "type": "array",
                "items": ref("Provider"),
                "description": "Managed providers first, then the stored ones by name.",
            }
        }
    ),
    "DiscoveredModels": all_required(
        {
            "models": {
                "type": "array",
                "items": all_required(
                    {
                        "id": {"type": "string", "description": "The provider's model id."},
                        "known": {
                            "type": "boolean",
                            "description": "A model of this provider already has this"
                            " `upstream_id`.",
                        },
                    }
                ),
            }
        }
    ),
    "CatalogueModel": all_required(
        {
            "id": _ID,
            "name": {"type": "string", "maxLength": rules.MODEL_NAME_MAX_LENGTH},
            "provider": {"type": "string", "description": "The provider's name."},
            "upstream_id": {"type": "string"},
            "display_name": {"type": "string"},
            "description": {"type": "string"},
            "context_window": _COUNT,
            "max_output_tokens": _COUNT,
            "default_temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
            "enabled": {"type": "boolean"},
            "allowed_roles": {
                "type": "array",
                "items": {"type": "string", "enum": list(USER_ROLES)},
            },
            "fallback": {
                "type": ["string", "null"],
                "description": "The name of the model that answers when this one fails.",
            },
            "price_input_per_mtok": _PRICE,
            "price_output_per_mtok": _PRICE,
            "is_default": {
                "type": "boolean",
                "description": "The system default (at most one stored model; without one,"
                " LLM_MODEL is).",
            },
            "managed": _MANAGED,
            "created_at": _STORED_TIME,
            "updated_at": _STORED_TIME,
        }
    ),
    "CatalogueModelEnvelope": envelope("model", "CatalogueModel"),
    "CatalogueModelList": all_required(
        {
            "models": {
                "type": "array",
                "items": ref("CatalogueModel"),
                "description": "Managed models first, then the stored ones by name.",
            }
        }
    ),
    "ModelTestResult": all_required(
        {
            "ok": {"type": "boolean"},
            "latency_ms": {"type": "integer", "minimum": 0},
            "reply": {
                "type": "string",
                "maxLength": REPLY_EXCERPT_CHARS,
                "description": f"The first {REPLY_EXCERPT_CHARS} characters of the reply.",
            },
            "error": {
                "type": ["string", "null"],
                "description": "Why not: an HTTP status (`HTTP 401`) or an exception class"
                " name, never a message (it could quote the key); null when `ok`.",
            },
        }
    ),
}

_CHANGE_NOTE = (
    " Recorded in the audit log (`{action}`, with the names of the fields changed, never the"
    " key) and used by every worker from its next request on."
)

PATHS: Document = {
    f"{_PREFIX}/providers": {
        "get": admin_operation(
            "listProviders",
            "List model providers",
            ok("ProviderList", "Every provider."),
            "400",
            parameters=query_parameters(admin_models.NoQuery),
        ),
        "post": admin_operation(
            "createProvider",
            "Add an OpenAI-compatible provider",
            created("ProviderEnvelope", "The provider."),
            "409",
            description="409 `conflict` for a taken or managed name (naming `name`); 409"
            " `key_encryption_unavailable` for an `api_key` while PROVIDER_KEY_SECRETS is not"
            " set." + _CHANGE_NOTE.format(action="provider.create"),
            body=request_body(models.ProviderCreate, description="The provider."),
        ),
    },
    f"{_PREFIX}/providers/{{provider_id}}": {
        "parameters": [_PROVIDER_ID],
        "get": admin_operation(
            "getProvider",
            "Show a stored provider",
            ok("ProviderEnvelope", "The provider."),
            "404",
        ),
        "patch": admin_operation(
            "updateProvider",
            "Change a provider",
            ok("ProviderEnvelope", "The provider, updated."),
            "404",
            "409",
            description='Only the fields sent change; `api_key: ""` removes the key.'
            + _CHANGE_NOTE.format(action="provider.update"),
            body=request_body(models.ProviderUpdate, description="Fields to change."),
        ),
        "delete": admin_operation(
            "deleteProvider",
            "Delete a provider and its models",
            no_content("Deleted, with its models."),
            "404",
            description="Conversations that chose one of its models answer with the default"
            " model from then on." + _CHANGE_NOTE.format(action="provider.delete"),
        ),
    },
    f"{_PREFIX}/providers/{{provider_id}}/discover": {
        "parameters": [_PROVIDER_ID],
        "post": admin_operation(
            "discoverProviderModels",
            "List the models the provider offers",
            ok("DiscoveredModels", "The provider's models, in its order."),
            "404",
            "409",
            "502",
            description="Asks the provider's `GET /models` with its key, headers and timeout."
            " 502 `upstream_error` when it cannot be reached or answers an error (the reason is"
            " an HTTP status or an exception class name); 409 when its key cannot be decrypted.",
        ),
    },
    f"{_PREFIX}/models": {
        "get": admin_operation(
            "listCatalogueModels",
            "List the catalogue's models",
            ok("CatalogueModelList", "Every model."),
            "400",
            parameters=query_parameters(admin_models.NoQuery),
        ),
        "post": admin_operation(
            "createCatalogueModel",
            "Add a model to a stored provider",
            created("CatalogueModelEnvelope", "The model."),
            "409",
            description="400 naming `fallback` for a cycle; 409 for a taken or managed name."
            " `is_default: true` makes the previous default an ordinary model."
            + _CHANGE_NOTE.format(action="model.create"),
            body=request_body(models.ModelCreate, description="The model."),
        ),
    },
    f"{_PREFIX}/models/{{model_id}}": {
        "parameters": [_MODEL_ID],
        "get": admin_operation(
            "getCatalogueModel",
            "Show a stored model",
            ok("CatalogueModelEnvelope", "The model."),
            "404",
        ),
        "patch": admin_operation(
            "updateCatalogueModel",
            "Change a model",
            ok("CatalogueModelEnvelope", "The model, updated."),
            "404",
            "409",
            description="Only the fields sent change; null clears an optional one."
            + _CHANGE_NOTE.format(action="model.update"),
            body=request_body(models.ModelUpdate, description="Fields to change."),
        ),
        "delete": admin_operation(
            "deleteCatalogueModel",
            "Delete a model",
            no_content("Deleted."),
            "404",
            description="Models that fell back to it no longer have a fallback; conversations"
            " that chose it answer with the default model."
            + _CHANGE_NOTE.format(action="model.delete"),
        ),
    },
    f"{_PREFIX}/models/{{model_id}}/test": {
        "parameters": [_MODEL_ID],
        "post": admin_operation(
            "testCatalogueModel",
            "Send the model one short request",
            ok("ModelTestResult", "How it went (200 whether or not the model answered)."),
            "404",
            "409",
            description=f"One non-streamed chat completion of at most {TEST_MAX_TOKENS} tokens"
            " through the model's provider. 409 when the provider's key cannot be decrypted.",
        ),
    },
}
