"""OpenAPI paths and schemas of the chat service (``/api/v1/chat``)."""

from __future__ import annotations

from typing import Any

from webapp.models import Conversation, max_id
from webapp.openapi.components import (
    Operations,
    all_required,
    created,
    envelope,
    json_response,
    no_content,
    ok,
    page,
    ref,
)
from webapp.openapi.from_models import query_parameters, request_body, schemas
from webapp.request_models import chat as models

__all__ = ["PATHS", "SCHEMAS", "SECURITY_SCHEMES", "TAGS"]

Document = dict[str, Any]

TAGS: list[Document] = [
    {"name": "chat", "description": "Conversations with the bot."},
]

SECURITY_SCHEMES: Document = {}

_CONVERSATION_ID = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "description": "A conversation of the caller's; anyone else's is a 404.",
    "schema": {"type": "integer", "minimum": 1, "maximum": max_id(Conversation.id)},
}

_TIMESTAMP = {"type": "string", "format": "date-time"}
# The range webapp.chat.routes accepts (tests/integration/test_hostile_input.py holds them equal;
# importing the routes here would load the bot into every service).
_EVENT_ID = {"type": "integer", "minimum": 0, "maximum": 10**9}

# --- conversations ----------------------------------------------------------------------------


def _with_messages(message_schema: str) -> Document:
    """Return the schema of a conversation carrying its messages, each a ``message_schema``."""
    return {
        "allOf": [
            ref("Conversation"),
            all_required(
                {
                    "messages": {
                        "type": "array",
                        "description": "Oldest first.",
                        "items": ref(message_schema),
                    }
                }
            ),
        ]
    }


_CONVERSATION_SCHEMAS: dict[str, Document] = {
    "Conversation": all_required(
        {
            "id": {"type": "integer", "minimum": 1},
            "title": {
                "type": ["string", "null"],
                "maxLength": 200,
                "description": "Null until the first exchange names the conversation after the"
                " start of its first message (at most 60 characters), unless the user gave one.",
            },
            "model": {
                "type": ["string", "null"],
                "maxLength": 100,
                "description": "The model chosen for the conversation (a `name` of `GET"
                " /api/v1/chat/models`); null: the user's default model, else the system"
                " default. A model no longer available answers with the default.",
            },
            "system_prompt": {
                "type": ["string", "null"],
                "maxLength": 4000,
                "description": "Sent before the history with every reply; null: none.",
            },
            "temperature": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 2,
                "description": "Null: the model's default temperature.",
            },
            "created_at": _TIMESTAMP,
            "updated_at": {
                **_TIMESTAMP,
                "description": "Last activity: creation or the last message stored. Renaming"
                " (or changing the model settings) does not change it.",
            },
        }
    ),
    "ConversationWithMessages": _with_messages("Message"),
    "ConversationEnvelope": envelope("conversation", "Conversation"),
    "ConversationDetailEnvelope": envelope("conversation", "ConversationWithMessages"),
    "ConversationList": page("conversations", "Conversation", "Most recently active first."),
    "ConversationExport": all_required(
        {
            "format": {"const": "chatbot.conversation"},
            "version": {"const": 1},
            "exported_at": _TIMESTAMP,
            "conversation": _with_messages("ExportedMessage"),
        },
        description="A conversation exported as a JSON file.",
    ),
    "ExportedMessage": all_required(
        {
            "id": {"type": "integer", "minimum": 1},
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"type": "string"},
            "model": {"type": ["string", "null"]},
            "tokens_in": {"type": "integer", "minimum": 0},
            "tokens_out": {"type": "integer", "minimum": 0},
            "created_at": _TIMESTAMP,
        }
    ),
}

_operation = Operations("chat", errors=("401", "429"))
_STRICT_QUERY = "Unknown or repeated query parameters are a 400 naming them."

_CONVERSATION_PATHS: Document = {
    "/api/v1/chat/conversations": {
        "post": _operation(
            "createConversation",
            "Start a conversation",
            created("ConversationEnvelope", "The new conversation."),
            "403",
            body=request_body(
                models.ConversationCreate,
                description="Optionally a title, a model, a system prompt, a temperature (a"
                " model the caller may not use is a 400 naming `model`).",
                required=False,
            ),
        ),
        "get": _operation(
            "listConversations",
            "List or search the caller's conversations, a page at a time",
            ok("ConversationList", "A page of conversations."),
            "400",
            description=_STRICT_QUERY,
            parameters=query_parameters(models.ConversationListQuery),
        ),
    },
    "/api/v1/chat/conversations/{conversation_id}": {
        "parameters": [_CONVERSATION_ID],
        "get": _operation(
            "getConversation",
            "One conversation with its messages",
            ok("ConversationDetailEnvelope", "The conversation."),
            "404",
        ),
        "patch": _operation(
            "renameConversation",
            "Rename a conversation, or change the model, system prompt or temperature",
            ok("ConversationEnvelope", "The updated conversation."),
            "403",
            "404",
            description="Fields left out stay as they are; null clears `model`,"
            " `system_prompt` and `temperature`. The next reply answers with the new settings;"
            " the stored replies keep the model that wrote them. Any other field, an empty"
            " body, or a model the caller may not use is a 400 naming the field.",
            body=request_body(models.ConversationUpdate, description="The fields to change."),
        ),
        "delete": _operation(
            "deleteConversation",
            "Delete a conversation and all its messages",
            no_content("Deleted, with its messages."),
            "403",
            "404",
        ),
    },
    "/api/v1/chat/conversations/{conversation_id}/export": {
        "parameters": [_CONVERSATION_ID],
        "get": _operation(
            "exportConversation",
            "Download a conversation with all its messages (JSON or Markdown)",
            {
                "200": {
                    "description": "The file, as an attachment.",
                    "headers": {
                        "Content-Disposition": {
                            "description": "`attachment` with a file name such as"
                            ' `"conversation-12-trip-planning.md"` (ASCII letters, digits'
                            " and dashes).",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {
                        "application/json": {"schema": ref("ConversationExport")},
                        "text/markdown": {
                            "schema": {
                                "type": "string",
                                "description": "A `#` heading with the title, then one"
                                " `##` heading per message (speaker, model, time)"
                                " followed by its text as written.",
                            }
                        },
                    },
                }
            },
            "400",
            "404",
            description=_STRICT_QUERY,
            parameters=query_parameters(models.ConversationExportQuery),
        ),
    },
}

# --- models and preferences -------------------------------------------------------------------

_CHOICE_SCHEMAS: dict[str, Document] = {
    "ChatModel": all_required(
        {
            "name": {
                "type": "string",
                "description": "What conversations and preferences choose it by.",
            },
            "display_name": {"type": "string"},
            "description": {"type": "string"},
            "context_window": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "Tokens the model reads at most, if known.",
            },
            "max_output_tokens": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "Tokens a reply may have at most; null: the deployment's limit.",
            },
            "is_default": {
                "type": "boolean",
                "description": "The system default: answers conversations that choose no"
                " model, for users with no default of their own.",
            },
        }
    ),
    "ChatModelList": all_required(
        {
            "models": {
                "type": "array",
                "items": ref("ChatModel"),
                "description": "Only the models the caller may use.",
            },
            "default": {
                "type": ["string", "null"],
                "description": "The system default's name (null only when the caller may"
                " use no model).",
            },
        }
    ),
    "ChatPreferences": all_required(
        {
            "default_model": {
                "type": ["string", "null"],
                "description": "The model of the caller's conversations that choose none;"
                " null: the system default.",
            }
        }
    ),
}

_CHOICE_PATHS: Document = {
    "/api/v1/chat/models": {
        "get": _operation(
            "listChatModels",
            "The models the caller may choose",
            ok("ChatModelList", "The models, and the system default."),
            description="Changes an admin makes to the catalogue show at once.",
        ),
    },
    "/api/v1/chat/preferences": {
        "get": _operation(
            "getChatPreferences",
            "The caller's chat preferences",
            ok("ChatPreferences", "The preferences."),
        ),
        "patch": _operation(
            "updateChatPreferences",
            "Change the caller's default model",
            ok("ChatPreferences", "The preferences, changed."),
            "403",
            description="A model the caller may not use is a 400 naming `default_model`.",
            body=request_body(models.PreferencesUpdate, description="The default model."),
        ),
    },
}

# --- messages ---------------------------------------------------------------------------------

_REPLY_ID = {
    "name": "reply_id",
    "in": "path",
    "required": True,
    "description": "An assistant message in one of the caller's conversations; else a 404.",
    "schema": {"type": "integer", "minimum": 1},
}

_MESSAGE_SCHEMAS: dict[str, Document] = {
    "Message": all_required(
        {
            "id": {"type": "integer", "minimum": 1},
            "conversation_id": {"type": "integer", "minimum": 1},
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {
                "type": "string",
                "description": "For a reply being generated, empty until it is finished (its"
                " tokens come through its events); for a stopped or failed reply, what was"
                " generated until then.",
            },
            "model": {
                "type": ["string", "null"],
                "description": "The model that answered (assistant messages).",
            },
            "tokens_in": {"type": "integer", "minimum": 0},
            "tokens_out": {"type": "integer", "minimum": 0},
            "status": {
                "type": "string",
                "enum": ["streaming", "complete", "stopped", "failed"],
                "description": "`complete` for user messages. A reply is `streaming` while it"
                " is generated, then `complete`, `stopped` (by the user) or `failed` (the"
                " model failed; such replies are not sent to the model as history).",
            },
            "latency_ms": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Of a finished reply: milliseconds from the start of the"
                " generation to its last token.",
            },
            "cached": {
                "type": "boolean",
                "description": "Served from the reply cache, without calling a model.",
            },
            "fallback": {
                "type": "boolean",
                "description": "Answered by the fallback model because the primary failed.",
            },
            "created_at": _TIMESTAMP,
        }
    ),
    "Exchange": all_required(
        {
            "message": {**ref("Message"), "description": "The caller's stored message."},
            "reply": {**ref("Message"), "description": "The bot's stored reply."},
        }
    ),
    "ReplyLinks": all_required(
        {
            "reply": {"type": "string", "description": "`GET`: the reply as stored now."},
            "events": {"type": "string", "description": "`GET`: its Server-Sent Events."},
            "stop": {"type": "string", "description": "`POST`: stop generating it."},
        }
    ),
    "StartedExchange": all_required(
        {
            "message": {**ref("Message"), "description": "The caller's stored message."},
            "reply": {
                **ref("Message"),
                "description": "The reply, still `streaming`: follow `links`.",
            },
            "links": ref("ReplyLinks"),
        }
    ),
    "ReplyEnvelope": envelope("reply", "Message"),
    "QuotaExceeded": all_required(
        {
            "error": all_required(
                {
                    "code": {"const": "quota_exceeded"},
                    "message": {"type": "string"},
                    "retry_after": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Seconds until the quota resets (also `Retry-After`).",
                    },
                    "resets_at": {
                        **_TIMESTAMP,
                        "description": "When the quota resets: the next 00:00 UTC.",
                    },
                    "limit": {"type": "integer", "minimum": 1, "description": "Tokens per day."},
                    "used": {"type": "integer", "minimum": 0, "description": "Tokens today."},
                },
                additionalProperties=False,
            )
        },
        additionalProperties=False,
    ),
}

_EVENT_STREAM = (
    "Server-Sent Events, each with an `id`, an `event` and its `data` as one line of JSON. The"
    " POST that starts a reply sends `message` first (id 0: the stored user message, a"
    " `Message`, with `reply_id`). Then one `token` per piece of the reply as the model"
    ' produces it (`{"text": "..."}`), and last one of: `done` (the stored reply, a'
    " `Message`), `stopped` (the stored partial reply, a `Message`) or `error` (an `Error`;"
    " the reply is stored as `failed`, the user message stays). Ids count up from 1 within the"
    " reply: reconnect to the reply's events with `Last-Event-ID` to get the rest, each event"
    " once. Lines starting with `:` are keepalives. An `error` without an id means the stream"
    " broke, not the reply: reconnect."
)

# OpenAPI before 3.2 has the schema of text/event-stream describe one event (as a client such
# as EventSource reads it: the fields of the event, `data` as text), not the stream as a string.
_REPLY_EVENT = {
    "type": "object",
    "description": _EVENT_STREAM,
    "required": ["event", "data"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The event's number within the reply (absent on a broken stream's"
            " `error`).",
        },
        "event": {"type": "string", "enum": ["message", "token", "done", "stopped", "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "One line of JSON: a `Message` (`message`, `done`, `stopped`),"
            ' `{"text": "..."}` (`token`) or an `Error` (`error`).',
        },
    },
}

_SSE_RESPONSE = {
    "description": "The reply, streamed (`Accept: text/event-stream` or `?stream=1`).",
    "headers": {
        "X-Reply-Id": {"description": "The reply's id.", "schema": {"type": "integer"}},
    },
    "content": {"text/event-stream": {"schema": ref("ReplyEvent")}},
}

_ACCEPTED = json_response(
    "StartedExchange",
    "Generation started (`?wait=0`, `Prefer: respond-async`, or the reply took longer than"
    " 300 s): follow the links.",
    headers={
        "Location": {"description": "The reply's URL.", "schema": {"type": "string"}},
    },
)

_QUOTA_OR_RATE_LIMITED = {
    "description": "Too many requests (`rate_limited`), or the daily token quota is used up"
    " (`quota_exceeded`, checked before any model is called; nothing is stored). Retry after"
    " `Retry-After` seconds.",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait: for the quota, until 00:00 UTC.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
    "content": {"application/json": {"schema": {"anyOf": [ref("Error"), ref("QuotaExceeded")]}}},
}

_BUSY = {
    "description": "This service generates as many replies as it may, or cannot reach its"
    " stream store; nothing was stored. Retry shortly. Error code: `service_unavailable`.",
    "content": {"application/json": {"schema": ref("Error")}},
}

_REPLY_MODES = [
    {
        "name": "stream",
        "in": "query",
        "required": False,
        "description": "`true`, `1` or `yes`: stream the reply as Server-Sent Events.",
        "schema": {"type": "string", "enum": ["true", "1", "yes"]},
    },
    {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": "`0`, `false` or `no`: answer 202 as soon as generation starts"
        " (like `Prefer: respond-async`) instead of waiting for the whole reply.",
        "schema": {"type": "string", "enum": ["0", "false", "no"]},
    },
]


def _reply_operation(
    operation_id: str, summary: str, answered: str, *, description: str, body: Document
) -> Document:
    """Return an operation that answers a user message (the reply: JSON, streamed or started).

    Args:
        operation_id: The ``operationId``.
        summary: The one-line summary.
        answered: What the 201 carries.
        description: More prose.
        body: The ``requestBody``.

    Returns:
        The operation object.
    """
    own = {
        "200": _SSE_RESPONSE,
        "201": json_response("Exchange", answered),
        "202": _ACCEPTED,
        "429": _QUOTA_OR_RATE_LIMITED,
        "503": _BUSY,
    }
    errors = ("403", "404", "409", "502")
    return _operation(
        operation_id,
        summary,
        own,
        *errors,
        description=description,
        parameters=_REPLY_MODES,
        body=body,
    )


_MESSAGE_PATHS: Document = {
    "/api/v1/chat/conversations/{conversation_id}/messages": {
        "parameters": [_CONVERSATION_ID],
        "post": _reply_operation(
            "postMessage",
            "Send a message and get the bot's reply",
            "The stored message and the complete reply.",
            description=(
                "The message is stored before the model is called, so it survives a failed"
                " generation. The reply is generated in the background, whatever happens to"
                " this connection: as JSON once complete (201; 502 if the model failed, the"
                " reply then stored as `failed`), or streamed as Server-Sent Events. 409 while"
                " another reply of the conversation is being generated."
            ),
            body=request_body(models.MessageCreate, description="The message."),
        ),
    },
    "/api/v1/chat/conversations/{conversation_id}/regenerate": {
        "parameters": [_CONVERSATION_ID],
        "post": _reply_operation(
            "regenerateReply",
            "Replace the last reply with a new one",
            "The user message answered and the new reply.",
            description=(
                "Deletes the conversation's last reply (complete, stopped or failed; its tokens"
                " still count toward today's quota) and answers the last user message again,"
                " exactly as sending a message does. 409 if there is no message to answer."
            ),
            body=request_body(models.Regenerate, description="Nothing (or `{}`).", required=False),
        ),
    },
    "/api/v1/chat/replies/{reply_id}": {
        "parameters": [_REPLY_ID],
        "get": _operation(
            "getReply",
            "One reply as stored now",
            ok("ReplyEnvelope", "The reply."),
            "404",
        ),
    },
    "/api/v1/chat/replies/{reply_id}/events": {
        "parameters": [_REPLY_ID],
        "get": _operation(
            "replyEvents",
            "Follow a reply as Server-Sent Events, resumable",
            {
                "200": {
                    "description": "The reply's events.",
                    "content": {"text/event-stream": {"schema": ref("ReplyEvent")}},
                }
            },
            "400",
            "404",
            description=(
                "The reply's events from the first, or after the one named by `Last-Event-ID`"
                " (the header EventSource sends when it reconnects, or the query parameter):"
                " each event once, until `done`, `stopped` or `error`. Served by any host"
                " from the shared stream; a finished reply's events stay available for"
                " `REPLY_STREAM_TTL` seconds, after that only its last event is sent (from"
                " the database)."
            ),
            parameters=[
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "The id of the last event received.",
                    "schema": _EVENT_ID,
                },
                {
                    "name": "last_event_id",
                    "in": "query",
                    "required": False,
                    "description": "The same, for clients that cannot set headers.",
                    "schema": _EVENT_ID,
                },
            ],
        ),
    },
    "/api/v1/chat/replies/{reply_id}/stop": {
        "parameters": [_REPLY_ID],
        "post": _operation(
            "stopReply",
            "Stop generating a reply, keeping what was generated",
            {
                "200": json_response("ReplyEnvelope", "The reply had already finished."),
                "202": json_response("ReplyEnvelope", "Stopping; the reply as it is now."),
                "503": {
                    "description": "The stream store (Redis) is unavailable: the stop could not"
                    " be recorded; retry. Error code: `service_unavailable`.",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
            },
            "404",
            description=(
                "The generation stops after its next token and closes the model's stream (the"
                " model stops too); the reply is stored as `stopped` with its text so far, and"
                " its events end with `stopped`. 202 while the stop is on its way; 200 if the"
                " reply had already finished (nothing changes)."
            ),
        ),
    },
}

# --- the document's parts -------------------------------------------------------------------

SCHEMAS: dict[str, Document] = {
    **schemas(
        models.ConversationCreate,
        models.ConversationUpdate,
        models.MessageCreate,
        models.PreferencesUpdate,
        models.Regenerate,
    ),
    **_CONVERSATION_SCHEMAS,
    **_CHOICE_SCHEMAS,
    **_MESSAGE_SCHEMAS,
    "ReplyEvent": _REPLY_EVENT,
}
PATHS: Document = {**_CONVERSATION_PATHS, **_CHOICE_PATHS, **_MESSAGE_PATHS}
