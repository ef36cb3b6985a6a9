"""OpenAPI paths and schemas of the webhook routes of the admin service (docs/webhooks.md)."""

from __future__ import annotations

from typing import Any

from webapp.models import (
    WEBHOOK_DELIVERY_STATUSES,
    WEBHOOK_DESCRIPTION_MAX_LENGTH,
    WEBHOOK_EVENTS,
    WEBHOOK_URL_MAX_LENGTH,
    Webhook,
    WebhookDelivery,
    max_id,
)
from webapp.openapi.components import (
    accepted,
    admin_operation,
    all_required,
    created,
    envelope,
    no_content,
    ok,
    page,
    ref,
)
from webapp.openapi.from_models import query_parameters, request_body, schemas
from webapp.request_models import admin as models
from webapp.services.webhooks import PING_EVENT

__all__ = ["PATHS", "SCHEMAS"]

Document = dict[str, Any]

_PREFIX = "/api/v1/admin/webhooks"
_WEBHOOK_ID = {
    "name": "webhook_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": max_id(Webhook.id)},
}
_DELIVERY_ID = {
    "name": "delivery_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": max_id(WebhookDelivery.id)},
}
_TIME = {"type": "string", "format": "date-time"}
_EVENTS = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
    "description": "Events to receive (duplicates are dropped).",
}
_URL = {
    "type": "string",
    "format": "uri",
    "maxLength": WEBHOOK_URL_MAX_LENGTH,
    "description": "http(s) URL whose host resolves only to public addresses, unless in"
    " WEBHOOK_ALLOWED_NETWORKS (400 naming `url` otherwise).",
    "examples": ["https://hooks.example.com/chatbot"],
}

SCHEMAS: dict[str, Document] = {
    **schemas(models.WebhookCreate, models.WebhookUpdate),
    "Webhook": all_required(
        {
            "id": {"type": "integer", "minimum": 1},
            "url": _URL,
            "events": _EVENTS,
            "active": {"type": "boolean", "description": "False: deliveries wait (paused)."},
            "description": {"type": "string", "maxLength": WEBHOOK_DESCRIPTION_MAX_LENGTH},
            "created_by": {
                "type": ["integer", "null"],
                "description": "The admin who registered it (null once that account is gone).",
            },
            "created_at": _TIME,
            "updated_at": _TIME,
        }
    ),
    "WebhookEnvelope": envelope("webhook", "Webhook"),
    "WebhookList": all_required({"webhooks": {"type": "array", "items": ref("Webhook")}}),
    "WebhookAttempt": all_required(
        {
            "attempted_at": _TIME,
            "status_code": {
                "type": ["integer", "null"],
                "description": "The receiver's HTTP status; null when none came (refused"
                " address, connection error, timeout).",
            },
            "duration_ms": {"type": "integer", "minimum": 0},
            "error": {
                "type": ["string", "null"],
                "description": "Why the attempt failed; null when it succeeded.",
            },
        }
    ),
    "WebhookDelivery": all_required(
        {
            "id": {"type": "integer", "minimum": 1},
            "webhook_id": {"type": "integer", "minimum": 1},
            "event": {"type": "string", "enum": [*WEBHOOK_EVENTS, PING_EVENT]},
            "payload": {"type": "object", "description": "The `data` of the POSTed document."},
            "status": {
                "type": "string",
                "enum": list(WEBHOOK_DELIVERY_STATUSES),
                "description": "`pending`: not tried yet; `failed`: retried at"
                " `next_attempt_at`; `succeeded`: answered 2xx; `dead`: every attempt failed.",
            },
            "attempts": {"type": "integer", "minimum": 0},
            "next_attempt_at": {**_TIME, "type": ["string", "null"]},
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "redelivery_of": {
                "type": ["integer", "null"],
                "description": "The delivery this one repeats (manual redelivery).",
            },
            "created_at": _TIME,
            "updated_at": _TIME,
            "attempt_log": {"type": "array", "items": ref("WebhookAttempt")},
        }
    ),
    "WebhookDeliveryEnvelope": envelope("delivery", "WebhookDelivery"),
    "WebhookDeliveryPage": page("deliveries", "WebhookDelivery"),
}

PATHS: Document = {
    _PREFIX: {
        "get": admin_operation(
            "listWebhooks",
            "List webhooks",
            ok("WebhookList", "Every webhook, oldest first."),
            "400",
        ),
        "post": admin_operation(
            "createWebhook",
            "Register a webhook",
            created("WebhookEnvelope", "The webhook."),
            "409",
            description="409 when WEBHOOK_SECRET is not set (deliveries could not be signed).",
            body=request_body(models.WebhookCreate, description="The webhook."),
        ),
    },
    f"{_PREFIX}/{{webhook_id}}": {
        "parameters": [_WEBHOOK_ID],
        "get": admin_operation(
            "getWebhook",
            "Show a webhook",
            ok("WebhookEnvelope", "The webhook."),
            "404",
        ),
        "patch": admin_operation(
            "updateWebhook",
            "Change a webhook",
            ok("WebhookEnvelope", "The webhook, updated."),
            "404",
            body=request_body(models.WebhookUpdate, description="Fields to change."),
        ),
        "delete": admin_operation(
            "deleteWebhook",
            "Delete a webhook and its deliveries",
            no_content("Deleted; queued deliveries are dropped."),
            "404",
        ),
    },
    f"{_PREFIX}/{{webhook_id}}/test": {
        "parameters": [_WEBHOOK_ID],
        "post": admin_operation(
            "testWebhook",
            "Queue a ping to the webhook",
            accepted("WebhookDeliveryEnvelope", "The queued `ping` delivery."),
            "404",
            description="Sent to this webhook only, even while it is paused.",
        ),
    },
    f"{_PREFIX}/{{webhook_id}}/deliveries": {
        "parameters": [_WEBHOOK_ID],
        "get": admin_operation(
            "listWebhookDeliveries",
            "List a webhook's deliveries with every attempt",
            ok("WebhookDeliveryPage", "Deliveries, newest first."),
            "400",
            "404",
            parameters=query_parameters(models.DeliveryListQuery),
        ),
    },
    f"{_PREFIX}/{{webhook_id}}/deliveries/{{delivery_id}}": {
        "parameters": [_WEBHOOK_ID, _DELIVERY_ID],
        "get": admin_operation(
            "getWebhookDelivery",
            "Show one delivery with every attempt",
            ok("WebhookDeliveryEnvelope", "The delivery."),
            "404",
        ),
    },
    f"{_PREFIX}/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver": {
        "parameters": [_WEBHOOK_ID, _DELIVERY_ID],
        "post": admin_operation(
            "redeliverWebhookDelivery",
            "Send a finished delivery again",
            accepted("WebhookDeliveryEnvelope", "The new delivery, queued."),
            "404",
            "409",
            description="Queues a new delivery of the same event and payload, with fresh"
            " attempts (`redelivery_of` names the original). 409 while the original is still"
            " `pending` or `failed` (being retried).",
        ),
    },
}
