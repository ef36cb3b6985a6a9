"""OpenAPI paths and schemas of the chat service (``/api/v1/chat``)."""

from __future__ import annotations

from typing import Any

from webapp.openapi.components import USER_AUTH, json_body, json_response, ref, responses

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
    "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647},
}

_TIMESTAMP = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, Document] = {
    "ConversationCreate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": 200,
                "description": "Without one, the first message names the conversation.",
            },
        },
    },
    "Conversation": {
        "type": "object",
        "required": ["id", "title", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "title": {"type": ["string", "null"], "maxLength": 200},
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
        },
    },
    "ConversationWithMessages": {
        "allOf": [
            ref("Conversation"),
            {
                "type": "object",
                "required": ["messages"],
                "properties": {
                    "messages": {
                        "type": "array",
                        "description": "Oldest first.",
                        "items": ref("Message"),
                    }
                },
            },
        ]
    },
    "ConversationEnvelope": {
        "type": "object",
        "required": ["conversation"],
        "properties": {"conversation": ref("Conversation")},
    },
    "ConversationDetailEnvelope": {
        "type": "object",
        "required": ["conversation"],
        "properties": {"conversation": ref("ConversationWithMessages")},
    },
    "ConversationList": {
        "type": "object",
        "required": ["conversations"],
        "properties": {
            "conversations": {
                "type": "array",
                "description": "Most recently active first.",
                "items": ref("Conversation"),
            }
        },
    },
    "Message": {
        "type": "object",
        "required": [
            "id",
            "conversation_id",
            "role",
            "content",
            "model",
            "tokens_in",
            "tokens_out",
            "created_at",
        ],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "conversation_id": {"type": "integer", "minimum": 1},
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"type": "string"},
            "model": {
                "type": ["string", "null"],
                "description": "The model that answered (assistant messages).",
            },
            "tokens_in": {"type": "integer", "minimum": 0},
            "tokens_out": {"type": "integer", "minimum": 0},
            "created_at": _TIMESTAMP,
        },
    },
    "MessageCreate": {
        "type": "object",
        "required": ["content"],
        "additionalProperties": False,
        "properties": {"content": {"type": "string", "minLength": 1, "maxLength": 8000}},
    },
    "Exchange": {
        "type": "object",
        "required": ["message", "reply"],
        "properties": {
            "message": {**ref("Message"), "description": "The caller's stored message."},
            "reply": {**ref("Message"), "description": "The bot's stored reply."},
        },
    },
}

_EVENT_STREAM = (
    "Server-Sent Events, one per line group (`id`, `event`, `data` as one line of JSON):"
    " `message` (the stored user message, a `Message`), then one `token` per piece of the"
    ' reply (`{"text": "..."}`), then `done` (the stored reply, a `Message`) or `error`'
    " (an `Error`; nothing partial is stored)."
)

PATHS: Document = {
    "/api/v1/chat/conversations": {
        "post": {
            "tags": ["chat"],
            "operationId": "createConversation",
            "summary": "Start a conversation",
            "security": USER_AUTH,
            "requestBody": json_body(
                "ConversationCreate", description="Optionally a title.", required=False
            ),
            "responses": responses(
                {"201": json_response("ConversationEnvelope", "The new conversation.")},
                "400",
                "401",
                "403",
                "413",
                "415",
                "429",
            ),
        },
        "get": {
            "tags": ["chat"],
            "operationId": "listConversations",
            "summary": "List the caller's conversations",
            "security": USER_AUTH,
            "responses": responses(
                {"200": json_response("ConversationList", "The conversations.")}, "401", "429"
            ),
        },
    },
    "/api/v1/chat/conversations/{conversation_id}": {
        "parameters": [_CONVERSATION_ID],
        "get": {
            "tags": ["chat"],
            "operationId": "getConversation",
            "summary": "One conversation with its messages",
            "security": USER_AUTH,
            "responses": responses(
                {"200": json_response("ConversationDetailEnvelope", "The conversation.")},
                "401",
                "404",
                "429",
            ),
        },
    },
    "/api/v1/chat/conversations/{conversation_id}/messages": {
        "parameters": [_CONVERSATION_ID],
        "post": {
            "tags": ["chat"],
            "operationId": "postMessage",
            "summary": "Send a message and get the bot's reply",
            "description": (
                "The message is stored before the model is called, so it survives a failed"
                " generation. The reply comes as JSON, or streamed as Server-Sent Events with"
                " `Accept: text/event-stream` (or `?stream=true`)."
            ),
            "security": USER_AUTH,
            "parameters": [
                {
                    "name": "stream",
                    "in": "query",
                    "required": False,
                    "description": "`true`, `1` or `yes`: stream the reply as Server-Sent Events.",
                    "schema": {"type": "string", "enum": ["true", "1", "yes"]},
                }
            ],
            "requestBody": json_body("MessageCreate", description="The message."),
            "responses": responses(
                {
                    "200": {
                        "description": "The reply, streamed (`Accept: text/event-stream`).",
                        "content": {
                            "text/event-stream": {
                                "schema": {"type": "string", "description": _EVENT_STREAM}
                            }
                        },
                    },
                    "201": json_response("Exchange", "The stored message and reply."),
                },
                "400",
                "401",
                "403",
                "404",
                "413",
                "415",
                "429",
                "502",
            ),
        },
    },
}
