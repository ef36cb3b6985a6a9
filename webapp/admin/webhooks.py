"""Admin routes of webhooks, under ``/api/v1/admin/webhooks``: endpoints and their deliveries.

Registered on the admin blueprint. Thin like the other admin routes: parse, call
:mod:`webapp.services.webhooks` (which checks the URL against the address guard and writes the
audit log), serialise.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

from webapp.admin.routes import acting_admin, bp
from webapp.extensions import db
from webapp.models import Webhook, WebhookDelivery
from webapp.request_models.admin import DeliveryListQuery, NoQuery, WebhookCreate, WebhookUpdate
from webapp.request_models.parsing import accepts
from webapp.routing import id_rule
from webapp.security import admin_required
from webapp.services import webhooks
from webapp.settings import Settings

# Ids beyond the column ranges can match nothing: 404 in routing, not a database error.
_WEBHOOK = id_rule("webhook_id", Webhook.id)
_DELIVERY = id_rule("delivery_id", WebhookDelivery.id)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


@bp.post("/webhooks")
@admin_required
@accepts(body=WebhookCreate)
def create_webhook(body: WebhookCreate) -> tuple[dict[str, Any], int]:
    """Register a webhook: ``url`` and ``events`` required, ``description``, ``active``."""
    settings = _settings()
    webhook = webhooks.create_webhook(
        db.session(),
        # Never None: the model requires both.
        url=body.url or "",
        events=body.events or [],
        description=body.description or "",
        active=True if body.active is None else body.active,
        actor=acting_admin(),
        allowed_networks=settings.webhook_allowed_networks,
        signing_enabled=bool(settings.webhook_secret),
    )
    return {"webhook": webhooks.webhook_to_dict(webhook)}, 201


@bp.get("/webhooks")
@admin_required
@accepts(query=NoQuery)
def list_webhooks(query: NoQuery) -> dict[str, Any]:
    """List every webhook, oldest first."""
    return {"webhooks": [webhooks.webhook_to_dict(w) for w in webhooks.list_webhooks(db.session())]}


@bp.get(f"/webhooks/{_WEBHOOK}")
@admin_required
def get_webhook(webhook_id: int) -> dict[str, Any]:
    """Return one webhook."""
    return {"webhook": webhooks.webhook_to_dict(webhooks.get_webhook(db.session(), webhook_id))}


@bp.patch(f"/webhooks/{_WEBHOOK}")
@admin_required
@accepts(body=WebhookUpdate)
def update_webhook(webhook_id: int, body: WebhookUpdate) -> dict[str, Any]:
    """Change a webhook's ``url``, ``events``, ``description`` or ``active``."""
    webhook = webhooks.update_webhook(
        db.session(),
        webhook_id,
        webhooks.WebhookChanges(
            url=body.url, events=body.events, description=body.description, active=body.active
        ),
        actor=acting_admin(),
        allowed_networks=_settings().webhook_allowed_networks,
    )
    return {"webhook": webhooks.webhook_to_dict(webhook)}


@bp.delete(f"/webhooks/{_WEBHOOK}")
@admin_required
def delete_webhook(webhook_id: int) -> Response:
    """Delete a webhook and its deliveries."""
    webhooks.delete_webhook(db.session(), webhook_id, actor=acting_admin())
    return Response(status=204)


@bp.post(f"/webhooks/{_WEBHOOK}/test")
@admin_required
def test_webhook(webhook_id: int) -> tuple[dict[str, Any], int]:
    """Queue a ``ping`` delivery to the webhook; follow it in its deliveries."""
    delivery = webhooks.send_ping(db.session(), webhook_id, actor=acting_admin())
    return {"delivery": webhooks.delivery_to_dict(delivery)}, 202


@bp.get(f"/webhooks/{_WEBHOOK}/deliveries")
@admin_required
@accepts(query=DeliveryListQuery)
def list_deliveries(webhook_id: int, query: DeliveryListQuery) -> dict[str, Any]:
    """List deliveries newest first, with attempts: ``status``, ``event``, ``limit``, ``cursor``."""
    deliveries, next_cursor = webhooks.list_deliveries(
        db.session(),
        webhook_id,
        webhooks.DeliveryFilter(
            status=query.status, event=query.event, before=query.cursor, limit=query.limit
        ),
    )
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
    delivery = webhooks.redeliver(db.session(), webhook_id, delivery_id, actor=acting_admin())
    return {"delivery": webhooks.delivery_to_dict(delivery)}, 202
