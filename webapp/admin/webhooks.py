"""Admin routes of webhooks, under ``/api/v1/admin/webhooks``: endpoints and their deliveries.

Registered on the admin blueprint. Thin like the other admin routes: parse, call
:mod:`webapp.services.webhooks` (which checks the URL against the address guard and writes the
audit log), serialise.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask_jwt_extended import current_user

from webapp.admin.routes import bp
from webapp.errors import ValidationError
from webapp.extensions import db
from webapp.models import Webhook, WebhookDelivery, id_converter, max_id
from webapp.request_body import read_json_object
from webapp.security import admin_required
from webapp.services import webhooks
from webapp.settings import Settings
from webapp.validation import bounded_int, query_parameters, reject_unknown_fields

# Ids beyond the column ranges can match nothing: 404 in routing, not a database error.
_WEBHOOK = id_converter("webhook_id", Webhook.id)
_DELIVERY = id_converter("delivery_id", WebhookDelivery.id)
_FIELDS = ("url", "events", "description", "active")
DELIVERIES_PAGE_DEFAULT = 50
DELIVERIES_PAGE_MAX = 100


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _actor() -> webhooks.Actor:
    return webhooks.Actor(user=current_user, source_ip=request.remote_addr)


def _optional(data: dict[str, Any], name: str, kind: type, kind_name: str) -> Any:
    value = data.get(name)
    if value is not None and not isinstance(value, kind):
        raise ValidationError(f"{name} must be {kind_name}", field=name)
    return value


def _changes(data: dict[str, Any]) -> webhooks.WebhookChanges:
    reject_unknown_fields(data, _FIELDS)
    return webhooks.WebhookChanges(
        url=_optional(data, "url", str, "a string"),
        events=_optional(data, "events", list, "a list of event names"),
        description=_optional(data, "description", str, "a string"),
        active=_optional(data, "active", bool, "true or false"),
    )


@bp.post("/webhooks")
@admin_required
def create_webhook() -> tuple[dict[str, Any], int]:
    """Register a webhook: ``url`` and ``events`` required, ``description``, ``active``."""
    changes = _changes(read_json_object())
    if changes.url is None:
        raise ValidationError("url is required", field="url")
    if changes.events is None:
        raise ValidationError("events is required", field="events")
    settings = _settings()
    webhook = webhooks.create_webhook(
        db.session(),
        url=changes.url,
        events=changes.events,
        description=changes.description or "",
        active=True if changes.active is None else changes.active,
        actor=_actor(),
        allowed_networks=settings.webhook_allowed_networks,
        signing_enabled=bool(settings.webhook_secret),
    )
    return {"webhook": webhooks.webhook_to_dict(webhook)}, 201


@bp.get("/webhooks")
@admin_required
def list_webhooks() -> dict[str, Any]:
    """List every webhook, oldest first."""
    query_parameters(request.args.to_dict(flat=False), ())
    return {"webhooks": [webhooks.webhook_to_dict(w) for w in webhooks.list_webhooks(db.session())]}


@bp.get(f"/webhooks/{_WEBHOOK}")
@admin_required
def get_webhook(webhook_id: int) -> dict[str, Any]:
    """Return one webhook."""
    return {"webhook": webhooks.webhook_to_dict(webhooks.get_webhook(db.session(), webhook_id))}


@bp.patch(f"/webhooks/{_WEBHOOK}")
@admin_required
def update_webhook(webhook_id: int) -> dict[str, Any]:
    """Change a webhook's ``url``, ``events``, ``description`` or ``active``."""
    webhook = webhooks.update_webhook(
        db.session(),
        webhook_id,
        _changes(read_json_object()),
        actor=_actor(),
        allowed_networks=_settings().webhook_allowed_networks,
    )
    return {"webhook": webhooks.webhook_to_dict(webhook)}


@bp.delete(f"/webhooks/{_WEBHOOK}")
@admin_required
def delete_webhook(webhook_id: int) -> Response:
    """Delete a webhook and its deliveries."""
    webhooks.delete_webhook(db.session(), webhook_id, actor=_actor())
    return Response(status=204)


@bp.post(f"/webhooks/{_WEBHOOK}/test")
@admin_required
def test_webhook(webhook_id: int) -> tuple[dict[str, Any], int]:
    """Queue a ``ping`` delivery to the webhook; follow it in its deliveries."""
    delivery = webhooks.send_ping(db.session(), webhook_id, actor=_actor())
    return {"delivery": webhooks.delivery_to_dict(delivery)}, 202


@bp.get(f"/webhooks/{_WEBHOOK}/deliveries")
@admin_required
def list_deliveries(webhook_id: int) -> dict[str, Any]:
    """List deliveries newest first, with attempts: ``status``, ``event``, ``limit``, ``cursor``."""
    params = query_parameters(
        request.args.to_dict(flat=False), ("status", "event", "limit", "cursor")
    )
    query = webhooks.DeliveryFilter(
        status=params.get("status"),
        event=params.get("event"),
        before=(
            bounded_int(params["cursor"], "cursor", minimum=1, maximum=max_id(WebhookDelivery.id))
            if "cursor" in params
            else None
        ),
        limit=(
            bounded_int(params["limit"], "limit", minimum=1, maximum=DELIVERIES_PAGE_MAX)
            if "limit" in params
            else DELIVERIES_PAGE_DEFAULT
        ),
    )
    deliveries, next_cursor = webhooks.list_deliveries(db.session(), webhook_id, query)
    return {
        "deliveries": [webhooks.delivery_to_dict(d) for d in deliveries],
        "next_cursor": None if next_cursor is None else str(next_cursor),
    }


@bp.get(f"/webhooks/{_WEBHOOK}/deliveries/{_DELIVERY}")
@admin_required
def get_delivery(webhook_id: int, delivery_id: int) -> dict[str, Any]:
    """Return one delivery with every attempt."""
    delivery = webhooks.get_delivery(db.session(), webhook_id, delivery_id)
    return {"delivery": webhooks.delivery_to_dict(delivery)}


@bp.post(f"/webhooks/{_WEBHOOK}/deliveries/{_DELIVERY}/redeliver")
@admin_required
def redeliver(webhook_id: int, delivery_id: int) -> tuple[dict[str, Any], int]:
    """Queue a finished delivery again, as a new delivery (409 while it is still retried)."""
    delivery = webhooks.redeliver(db.session(), webhook_id, delivery_id, actor=_actor())
    return {"delivery": webhooks.delivery_to_dict(delivery)}, 202
