"""OpenAPI paths and schemas of the OpenAI-compatible API (``/v1``, served by the chat service).

Its own document, since its errors have OpenAI's shape rather than the app's: ``RESPONSES``
replaces the shared error responses.
"""

from __future__ import annotations

from typing import Any

from webapp.openapi.components import all_required, ref
from webapp.openapi.from_models import request_body, schemas
from webapp.request_models import openai_api as models
from webapp.request_models.openai_api import STORE_CONVERSATION, STORE_HEADER

__all__ = [
    "DESCRIPTION",
    "PATHS",
    "RESPONSES",
    "SCHEMAS",
    "SECURITY_SCHEMES",
    "SUMMARY",
    "TAGS",
]

Document = dict[str, Any]

SUMMARY = "OpenAI-compatible chat completions, for any OpenAI client, with personal API keys."
DESCRIPTION = (
    "Point any OpenAI client at `https://<host>/v1` with a personal API key (created at"
    " `POST /api/v1/auth/api-keys`, sent as `Authorization: Bearer cbk_...`): `GET /v1/models`"
    " lists the models the key's owner may use, `POST /v1/chat/completions` answers, as one"
    " completion or streamed as chunks. Requests go through the same model catalogue,"
    " fallbacks, reply cache, daily token quota, rate limit, usage accounting and metrics as"
    " the chat UI's replies. They are not stored, unless the request asks with the header"
    f" `{STORE_HEADER}: {STORE_CONVERSATION}`: the exchange is then a new conversation of the"
    " key's owner, like any other. Every error has OpenAI's shape"
    ' `{"error": {"message", "type", "param", "code"}}`, so the official SDK raises its usual'
    " exceptions (401 `AuthenticationError`, 404 `NotFoundError`, 429 `RateLimitError`...)."
)

TAGS: list[Document] = [
    {"name": "openai", "description": "The OpenAI-compatible API; API keys only."},
]

SECURITY_SCHEMES: Document = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "A personal API key (`cbk_` and 40 characters) from `POST /api/v1/auth/api-keys`."
            " It works until it expires or is revoked, or its owner is disabled; it is no"
            " credential anywhere else (`/api/v1` refuses it), and access tokens none here."
        ),
    }
}
_SECURITY: list[Document] = [{"apiKey": []}]

_NULLABLE_TEXT = {"type": ["string", "null"]}
_COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, Document] = {
    **schemas(models.ChatCompletionRequest),
    "OpenAIError": all_required(
        {
            "error": all_required(
                {
                    "message": {"type": "string", "description": "Safe to show."},
                    "type": {
                        "type": "string",
                        "examples": [
                            "invalid_request_error",
                            "insufficient_quota",
                            "requests",
                            "server_error",
                        ],
                    },
                    "param": {
                        **_NULLABLE_TEXT,
                        "description": "The request parameter at fault (`messages[1].content`).",
                    },
                    "code": {
                        **_NULLABLE_TEXT,
                        "examples": [
                            "invalid_api_key",
                            "model_not_found",
                            "rate_limit_exceeded",
                            "insufficient_quota",
                            "validation_error",
                            "upstream_error",
                        ],
                    },
                }
            )
        },
        description="OpenAI's error shape.",
    ),
    "Model": all_required(
        {
            "id": {"type": "string", "description": "The name to send as `model`."},
            "object": {"const": "model"},
            "created": {"type": "integer", "description": "Always 0: not tracked."},
            "owned_by": {"type": "string", "description": "The model's provider."},
        }
    ),
    "ModelList": all_required(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": ref("Model"),
                "description": "The models the key's owner may use, in catalogue order.",
            },
        }
    ),
    "CompletionUsage": all_required(
        {"prompt_tokens": _COUNT, "completion_tokens": _COUNT, "total_tokens": _COUNT},
        description="As the model reported it, else estimated (what the daily quota counts).",
    ),
    "ChatCompletion": all_required(
        {
            "id": {"type": "string", "pattern": "^chatcmpl-"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {
                "type": "string",
                "description": "The model that answered (a fallback, when the model failed).",
            },
            "choices": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": all_required(
                    {
                        "index": {"const": 0},
                        "message": all_required(
                            {
                                "role": {"const": "assistant"},
                                "content": {"type": "string"},
                                "refusal": {"type": "null"},
                            }
                        ),
                        "logprobs": {"type": "null"},
                        "finish_reason": {"const": "stop"},
                    }
                ),
            },
            "usage": ref("CompletionUsage"),
            "system_fingerprint": {"type": "null"},
        }
    ),
    "ChatCompletionChunk": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "description": (
            "One `data:` line of the stream, as JSON: the first chunk's delta has the role,"
            " the next ones each a piece of the content, the last one of the choice"
            " `finish_reason: stop`; with `stream_options.include_usage` every chunk has"
            " `usage` (null), and one more chunk with empty `choices` carries it. The stream"
            " ends with `data: [DONE]`; lines starting with `:` are keepalives. A model that"
            " fails after it started answering ends the stream with an `OpenAIError` line"
            " instead, and no `[DONE]`."
        ),
        "properties": {
            "id": {"type": "string", "pattern": "^chatcmpl-"},
            "object": {"const": "chat.completion.chunk"},
            "created": {"type": "integer"},
            "model": {"type": "string", "description": "The model asked for."},
            "system_fingerprint": {"type": "null"},
            "choices": {
                "type": "array",
                "maxItems": 1,
                "items": all_required(
                    {
                        "index": {"const": 0},
                        "delta": {
                            "type": "object",
                            "properties": {
                                "role": {"const": "assistant"},
                                "content": {"type": "string"},
                            },
                        },
                        "logprobs": {"type": "null"},
                        "finish_reason": {"type": ["string", "null"], "enum": ["stop", None]},
                    }
                ),
            },
            "usage": {"anyOf": [ref("CompletionUsage"), {"type": "null"}]},
        },
    },
}


def _error(description: str, headers: Document | None = None) -> Document:
    response: Document = {
        "description": description,
        "content": {"application/json": {"schema": ref("OpenAIError")}},
    }
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait: for the quota, until 00:00 UTC.",
        "schema": {"type": "integer", "minimum": 0},
    }
}

RESPONSES: dict[str, Document] = {
    "400": _error(
        "Invalid request (`invalid_request_error`): `param` names the parameter at fault,"
        f" unknown ones included, or the `{STORE_HEADER}` header."
    ),
    "401": _error(
        "No API key, or one that does not authenticate (`invalid_api_key`): unknown, revoked,"
        " expired, or its owner is disabled."
    ),
    "404": _error(
        "No such model, or one the key's owner may not use (`model_not_found`,"
        " indistinguishable); or no such route."
    ),
    "413": _error("The request body is larger than the service accepts."),
    "415": _error("The request body is not declared as JSON."),
    "429": _error(
        "Too many requests (`rate_limit_exceeded`, the owner's general limit) or the daily"
        " token quota is used up (`insufficient_quota`, checked before any model runs)."
        " Retry after `Retry-After` seconds.",
        headers=_RETRY_AFTER,
    ),
    "502": _error("The model (and its fallbacks) failed before answering (`upstream_error`)."),
    "503": _error(
        "This process generates as many replies as it may, or a dependency is down; retry"
        " after `Retry-After` seconds when given."
    ),
    "default": _error("Any other error, in the same shape (500 `internal_error`)."),
}


def _responses(own: Document, *errors: str) -> Document:
    result = dict(own)
    for status in ("401", *errors, "429"):
        result.setdefault(status, {"$ref": f"#/components/responses/{status}"})
    result["default"] = {"$ref": "#/components/responses/default"}
    return result


_MODEL_PARAMETER = {
    "name": "model",
    "in": "path",
    "required": True,
    "description": "A model's name (may hold `/` and `:`).",
    "schema": {"type": "string"},
}

PATHS: Document = {
    "/v1/models": {
        "get": {
            "tags": ["openai"],
            "operationId": "listModels",
            "summary": "List the models the key's owner may use",
            "security": _SECURITY,
            "responses": _responses(
                {
                    "200": {
                        "description": "The models.",
                        "content": {"application/json": {"schema": ref("ModelList")}},
                    }
                }
            ),
        }
    },
    "/v1/models/{model}": {
        "parameters": [_MODEL_PARAMETER],
        "get": {
            "tags": ["openai"],
            "operationId": "getModel",
            "summary": "One model the key's owner may use",
            "security": _SECURITY,
            "responses": _responses(
                {
                    "200": {
                        "description": "The model.",
                        "content": {"application/json": {"schema": ref("Model")}},
                    }
                },
                "404",
            ),
        },
    },
    "/v1/chat/completions": {
        "post": {
            "tags": ["openai"],
            "operationId": "createChatCompletion",
            "summary": "Answer a conversation, as one completion or streamed",
            "description": (
                "The system (and developer) messages, in order, make the system prompt; the"
                " others are the conversation, whose last message must be the user's. The"
                " model must be one the key's owner may use (404 otherwise: no silent"
                " default); when it fails before answering, its fallbacks answer and `model`"
                " says which did. `temperature` and `max_tokens` (or `max_completion_tokens`,"
                " capped by the model's own limit) apply to every model of the chain, `top_p`"
                " and `stop` to the OpenAI-compatible ones. A reply is streamed only after its"
                " first token: a model that fails before that is a 502 either way."
                f" `{STORE_HEADER}: {STORE_CONVERSATION}` stores the exchange as a new"
                " conversation of the key's owner (its reply is generated to its end, as a"
                " chat reply, even when the client leaves)."
            ),
            "security": _SECURITY,
            "parameters": [
                {
                    "name": STORE_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "`conversation`: store the exchange as a conversation.",
                    "schema": {"type": "string", "enum": [STORE_CONVERSATION]},
                }
            ],
            "requestBody": request_body(
                models.ChatCompletionRequest, description="The conversation and the settings."
            ),
            "responses": _responses(
                {
                    "200": {
                        "description": "The completion (`stream: false`), or its chunks as"
                        " Server-Sent Events (`stream: true`).",
                        "content": {
                            "application/json": {"schema": ref("ChatCompletion")},
                            "text/event-stream": {"schema": ref("ChatCompletionChunk")},
                        },
                    }
                },
                "400",
                "404",
                "413",
                "415",
                "502",
                "503",
            ),
        }
    },
}
