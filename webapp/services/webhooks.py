"""Webhooks: registering endpoints, queueing events for them, and the deliveries' history.

Emitting an event (:func:`emit`) inserts one ``webhook_deliveries`` row per active webhook that
subscribes to it, in the caller's transaction: the event and its deliveries are committed
together or not at all (a transactional outbox), and no request waits on a receiver. The worker
in :mod:`webapp.webhooks.worker` delivers the rows. Every change an admin makes here is written
to the audit log in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, insert, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, selectinload

from webapp.errors import ConflictError, NotFoundError, ValidationError
from webapp.models import (
    WEBHOOK_DELIVERY_STATUSES,
    WEBHOOK_DESCRIPTION_MAX_LENGTH,
    WEBHOOK_EVENTS,
    WEBHOOK_URL_MAX_LENGTH,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    isoformat_utc,
    utcnow,
)
from webapp.services import audit
from webapp.services.audit import Actor
from webapp.validation import check_text
from webapp.webhooks.addresses import IPNetwork, RefusedAddressError, resolve_target

__all__ = [
    "PING_EVENT",
    "DeliveryFilter",
    "WebhookChanges",
    "attempt_to_dict",
    "create_webhook",
    "delete_webhook",
    "delivery_to_dict",
    "emit",
    "get_delivery",
    "get_webhook",
    "list_deliveries",
    "list_webhooks",
    "redeliver",
    "send_ping",
    "subscribed_webhooks",
    "update_webhook",
    "webhook_to_dict",
]

PING_EVENT = "ping"
"""Sent by ``POST /webhooks/<id>/test`` to that webhook only, whatever it subscribes to."""
_UNSIGNABLE = "Webhooks cannot be signed: WEBHOOK_SECRET is not set on the server."


@dataclass(frozen=True)
class WebhookChanges:
    """Fields to change on a webhook; None leaves a field as it is.

    Attributes:
        url: New URL (checked like at registration).
        events: New subscriptions.
        description: New description.
        active: Enable or pause deliveries.
    """

    url: str | None = None
    events: Sequence[str] | None = None
    description: str | None = None
    active: bool | None = None


@dataclass(frozen=True)
class DeliveryFilter:
    """Which deliveries to list, newest first.

    Attributes:
        status: Only deliveries in this status.
        event: Only deliveries of this event.
        before: Only deliveries with a smaller id (the page after the one ending there).
        limit: At most this many.
    """

    status: str | None = None
    event: str | None = None
    before: int | None = None
    limit: int = 50


# --- serialisation ----------------------------------------------------------------------------


def webhook_to_dict(webhook: Webhook) -> dict[str, Any]:
    """Return the JSON representation of a webhook.

    Args:
        webhook: The webhook.

    Returns:
        ``{"id", "url", "events", "active", "description", "created_by", "created_at",
        "updated_at"}``.
    """
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "active": webhook.active,
        "description": webhook.description,
        "created_by": webhook.created_by,
        "created_at": isoformat_utc(webhook.created_at),
        "updated_at": isoformat_utc(webhook.updated_at),
    }


def attempt_to_dict(attempt: WebhookAttempt) -> dict[str, Any]:
    """Return the JSON representation of one delivery attempt.

    Args:
        attempt: The attempt.

    Returns:
        ``{"attempted_at", "status_code", "duration_ms", "error"}``.
    """
    return {
        "attempted_at": isoformat_utc(attempt.attempted_at),
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "error": attempt.error,
    }


def delivery_to_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    """Return the JSON representation of a delivery, with every attempt made.

    Args:
        delivery: The delivery (its ``attempt_log`` is loaded if it was not).

    Returns:
        The delivery's fields and ``attempt_log``, oldest attempt first.
    """
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "event": delivery.event,
        "payload": delivery.payload,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": (
            isoformat_utc(delivery.next_attempt_at) if delivery.next_attempt_at else None
        ),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "redelivery_of": delivery.redelivery_of,
        "created_at": isoformat_utc(delivery.created_at),
        "updated_at": isoformat_utc(delivery.updated_at),
        "attempt_log": [attempt_to_dict(attempt) for attempt in delivery.attempt_log],
    }


# --- emitting events --------------------------------------------------------------------------


def emit(session: Session, event: str, data: dict[str, Any]) -> None:
    """Queue an event for every active webhook subscribed to it, in the caller's transaction.

    One ``INSERT ... SELECT``: nothing is read back, and with no webhook it inserts nothing.

    Args:
        session: Database session; the caller commits (with the change the event describes).
        event: One of ``WEBHOOK_EVENTS``.
        data: The event's JSON data (the ``data`` member of the POSTed document).

    Raises:
        ValueError: If ``event`` is not a known event (a programming error).
    """
    subscribed = subscribed_webhooks(event).add_columns(literal(event), literal(data, JSONB))
    session.execute(
        insert(WebhookDelivery).from_select(["webhook_id", "event", "payload"], subscribed)
    )


def subscribed_webhooks(event: str) -> Select[int]:
    """Return the query of the ids of the active webhooks subscribed to an event.

    The one definition of who receives an event: :func:`emit` runs it, and storing a finished
    reply inserts its deliveries with it in the statement that stores the reply.

    Args:
        event: One of ``WEBHOOK_EVENTS``.

    Returns:
        A query of ``webhooks.id``.

    Raises:
        ValueError: If ``event`` is not a known event (a programming error).
    """
    if event not in WEBHOOK_EVENTS:
        msg = f"unknown webhook event {event!r}"
        raise ValueError(msg)
    return select(Webhook.id).where(Webhook.active.is_(True), Webhook.events.contains([event]))


# --- managing webhooks ------------------------------------------------------------------------


def _check_url(url: str, allowed: Iterable[IPNetwork]) -> str:
    check_text(url, "url", min_length=1, max_length=WEBHOOK_URL_MAX_LENGTH)
    url = url.strip()
    try:
        resolve_target(url, allowed)
    except RefusedAddressError as exc:
        raise ValidationError(str(exc), field="url") from None
    return url


def _check_events(events: Sequence[str]) -> list[str]:
    if isinstance(events, str) or not isinstance(events, Sequence) or not events:
        raise ValidationError(
            f"events must be a non-empty list of: {', '.join(WEBHOOK_EVENTS)}", field="events"
        )
    chosen: list[str] = []
    for name in events:
        if not isinstance(name, str) or name not in WEBHOOK_EVENTS:
            raise ValidationError(
                f"events: unknown event {name!r}; choose from {', '.join(WEBHOOK_EVENTS)}",
                field="events",
            )
        if name not in chosen:
            chosen.append(name)
    return chosen


def _check_description(description: str) -> str:
    check_text(description, "description", min_length=0, max_length=WEBHOOK_DESCRIPTION_MAX_LENGTH)
    return description.strip()


def _audit(session: Session, actor: Actor, action: str, target_id: int, **details: Any) -> None:
    audit.record(
        session,
        action=action,
        actor=actor.user,
        target_type="webhook",
        target_id=target_id,
        source_ip=actor.source_ip,
        details=details or None,
    )


def create_webhook(
    session: Session,
    *,
    url: str,
    events: Sequence[str],
    description: str = "",
    active: bool = True,
    actor: Actor,
    allowed_networks: Iterable[IPNetwork] = (),
    signing_enabled: bool = True,
) -> Webhook:
    """Register a webhook.

    Args:
        session: Database session; committed.
        url: http(s) URL; its host must resolve to public addresses only, unless allowed.
        events: Events to subscribe to (``WEBHOOK_EVENTS``).
        description: What it is for, shown in the console.
        active: Deliver to it (False registers it paused).
        actor: The admin, for the audit log.
        allowed_networks: WEBHOOK_ALLOWED_NETWORKS.
        signing_enabled: Whether WEBHOOK_SECRET is set; without it nothing can be signed.

    Returns:
        The new webhook.

    Raises:
        ValidationError: Naming the field at fault (``url``, ``events``, ``description``).
        ConflictError: If WEBHOOK_SECRET is not set.
    """
    webhook = Webhook(
        url=_check_url(url, allowed_networks),
        events=_check_events(events),
        description=_check_description(description),
        active=active,
        created_by=actor.user.id,
    )
    if not signing_enabled:
        raise ConflictError(_UNSIGNABLE)
    session.add(webhook)
    session.flush()
    _audit(
        session,
        actor,
        "admin.webhook_created",
        webhook.id,
        url=webhook.url,
        events=webhook.events,
        active=webhook.active,
    )
    session.commit()
    return webhook


def list_webhooks(session: Session) -> list[Webhook]:
    """Return every webhook, oldest first.

    Args:
        session: Database session.

    Returns:
        The webhooks.
    """
    return list(session.scalars(select(Webhook).order_by(Webhook.id)))


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    """Return a webhook.

    Args:
        session: Database session.
        webhook_id: Its id.

    Returns:
        The webhook.

    Raises:
        NotFoundError: If there is none with this id.
    """
    webhook = session.get(Webhook, webhook_id)
    if webhook is None:
        raise NotFoundError(f"webhook {webhook_id} does not exist")
    return webhook


def update_webhook(
    session: Session,
    webhook_id: int,
    changes: WebhookChanges,
    *,
    actor: Actor,
    allowed_networks: Iterable[IPNetwork] = (),
) -> Webhook:
    """Change a webhook's URL, subscriptions, description or state.

    Deliveries already queued keep going to the webhook (at its new URL); pausing it holds
    them until it is active again.

    Args:
        session: Database session; committed.
        webhook_id: The webhook.
        changes: What to change.
        actor: The admin, for the audit log.
        allowed_networks: WEBHOOK_ALLOWED_NETWORKS.

    Returns:
        The updated webhook.

    Raises:
        NotFoundError: If there is no such webhook.
        ValidationError: Naming the field at fault.
    """
    webhook = get_webhook(session, webhook_id)
    changed: dict[str, Any] = {}
    if changes.url is not None:
        webhook.url = changed["url"] = _check_url(changes.url, allowed_networks)
    if changes.events is not None:
        webhook.events = changed["events"] = _check_events(changes.events)
    if changes.description is not None:
        webhook.description = changed["description"] = _check_description(changes.description)
    if changes.active is not None:
        webhook.active = changed["active"] = changes.active
    if changed:
        webhook.updated_at = utcnow()
        _audit(session, actor, "admin.webhook_updated", webhook.id, **changed)
    session.commit()
    return webhook


def delete_webhook(session: Session, webhook_id: int, *, actor: Actor) -> None:
    """Delete a webhook with its deliveries (queued ones are never sent).

    Args:
        session: Database session; committed.
        webhook_id: The webhook.
        actor: The admin, for the audit log.

    Raises:
        NotFoundError: If there is no such webhook.
    """
    webhook = get_webhook(session, webhook_id)
    _audit(session, actor, "admin.webhook_deleted", webhook.id, url=webhook.url)
    session.delete(webhook)
    session.commit()


def send_ping(session: Session, webhook_id: int, *, actor: Actor) -> WebhookDelivery:
    """Queue a ``ping`` delivery to one webhook, to test it (delivered even while paused).

    Args:
        session: Database session; committed.
        webhook_id: The webhook.
        actor: The admin, for the audit log.

    Returns:
        The queued delivery.

    Raises:
        NotFoundError: If there is no such webhook.
    """
    webhook = get_webhook(session, webhook_id)
    delivery = WebhookDelivery(
        webhook_id=webhook.id,
        event=PING_EVENT,
        payload={"webhook": webhook_to_dict(webhook)},
        attempt_log=[],
    )
    session.add(delivery)
    session.flush()
    _audit(session, actor, "admin.webhook_pinged", webhook.id, delivery_id=delivery.id)
    session.commit()
    return delivery


# --- deliveries -------------------------------------------------------------------------------


def list_deliveries(
    session: Session, webhook_id: int, query: DeliveryFilter
) -> tuple[list[WebhookDelivery], int | None]:
    """Return a page of a webhook's deliveries, newest first, with their attempts.

    Args:
        session: Database session.
        webhook_id: The webhook.
        query: Filters and page.

    Returns:
        The deliveries, and the ``before`` of the next page (None on the last page).

    Raises:
        NotFoundError: If there is no such webhook.
        ValidationError: If a filter is invalid, naming it.
    """
    get_webhook(session, webhook_id)
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .options(selectinload(WebhookDelivery.attempt_log))
        .order_by(WebhookDelivery.id.desc())
        .limit(query.limit + 1)
    )
    if query.status is not None:
        if query.status not in WEBHOOK_DELIVERY_STATUSES:
            raise ValidationError(
                f"status must be one of {', '.join(WEBHOOK_DELIVERY_STATUSES)}", field="status"
            )
        statement = statement.where(WebhookDelivery.status == query.status)
    if query.event is not None:
        if query.event not in (*WEBHOOK_EVENTS, PING_EVENT):
            raise ValidationError(
                f"event must be one of {', '.join((*WEBHOOK_EVENTS, PING_EVENT))}", field="event"
            )
        statement = statement.where(WebhookDelivery.event == query.event)
    if query.before is not None:
        statement = statement.where(WebhookDelivery.id < query.before)
    deliveries = list(session.scalars(statement))
    if len(deliveries) > query.limit:
        return deliveries[: query.limit], deliveries[query.limit - 1].id
    return deliveries, None


def get_delivery(session: Session, webhook_id: int, delivery_id: int) -> WebhookDelivery:
    """Return one delivery of a webhook, with its attempts.

    Args:
        session: Database session.
        webhook_id: The webhook.
        delivery_id: The delivery.

    Returns:
        The delivery.

    Raises:
        NotFoundError: If there is no such delivery of this webhook.
    """
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id)
        .options(selectinload(WebhookDelivery.attempt_log))
    )
    if delivery is None:
        raise NotFoundError(f"delivery {delivery_id} of webhook {webhook_id} does not exist")
    return delivery


def redeliver(
    session: Session, webhook_id: int, delivery_id: int, *, actor: Actor
) -> WebhookDelivery:
    """Queue a delivery again, as a new delivery of the same event with a fresh set of attempts.

    The original keeps its history; the new one names it in ``redelivery_of``.

    Args:
        session: Database session; committed.
        webhook_id: The webhook.
        delivery_id: The delivery to repeat; it must be finished (``succeeded`` or ``dead``).
        actor: The admin, for the audit log.

    Returns:
        The new delivery.

    Raises:
        NotFoundError: If there is no such delivery of this webhook.
        ConflictError: If it is still being delivered (``pending`` or ``failed``).
    """
    original = get_delivery(session, webhook_id, delivery_id)
    if original.status in ("pending", "failed"):
        raise ConflictError(
            f"delivery {delivery_id} is still being delivered ({original.status}); wait for it"
            " to succeed or die"
        )
    delivery = WebhookDelivery(
        webhook_id=original.webhook_id,
        event=original.event,
        payload=original.payload,
        redelivery_of=original.id,
        attempt_log=[],
    )
    session.add(delivery)
    session.flush()
    _audit(
        session,
        actor,
        "admin.webhook_redelivered",
        webhook_id,
        delivery_id=original.id,
        new_delivery_id=delivery.id,
    )
    session.commit()
    return delivery
