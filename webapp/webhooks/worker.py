"""The webhook worker: claim due deliveries, POST them signed, record every attempt.

Several workers (processes or hosts) can run at once: each claims a batch of due deliveries
with ``SELECT ... FOR UPDATE SKIP LOCKED`` and pushes their ``next_attempt_at`` past the time
the batch can take (a lease), then commits, so no transaction stays open during HTTP. A worker
that dies mid-batch leaves its deliveries to be claimed again when the lease runs out (the
receiver may then see a delivery twice: ``X-Chatbot-Delivery`` lets it deduplicate).

A failed attempt (no 2xx answer, including a redirect, which is never followed) is retried
after an exponentially growing delay (:func:`retry_delay`) until ``MAX_ATTEMPTS``, then the
delivery is ``dead``. Each attempt resolves the host again, checks the addresses against the
guard (:mod:`webapp.webhooks.addresses`) and connects to the checked address.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from webapp import __version__
from webapp.models import Webhook, WebhookAttempt, WebhookDelivery, isoformat_utc, utcnow
from webapp.services.webhooks import PING_EVENT
from webapp.webhooks.addresses import IPNetwork, RefusedAddressError, Target, resolve_target
from webapp.webhooks.signing import encode_body, signed_headers

__all__ = [
    "BATCH_SIZE",
    "MAX_ATTEMPTS",
    "WebhookWorker",
    "delivery_document",
    "retry_delay",
]

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
"""Attempts per delivery; after the last failure it is ``dead`` (about an hour after the first)."""
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
BATCH_SIZE = 10
RETENTION = timedelta(days=30)
"""Finished deliveries (succeeded or dead) are deleted, with their attempts, this long after."""
PRUNE_INTERVAL_SECONDS = 3600.0
ERROR_MAX_LENGTH = 500
USER_AGENT = f"chatbot-webhooks/{__version__}"


def retry_delay(attempts: int) -> timedelta:
    """Return how long to wait after the ``attempts``-th failed attempt.

    30 s, 1 min, 2 min, 4 min, 8 min, 16 min, 32 min: doubling, capped at an hour.

    Args:
        attempts: Attempts made so far (1 after the first).

    Returns:
        The delay before the next attempt.
    """
    return timedelta(
        seconds=min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)
    )


def delivery_document(
    delivery_id: int, event: str, created_at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """Return the JSON document POSTed for a delivery.

    Args:
        delivery_id: The delivery's id.
        event: The event name.
        created_at: When the event was queued.
        data: The event's data.

    Returns:
        ``{"id", "event", "created_at", "data"}``.
    """
    return {
        "id": delivery_id,
        "event": event,
        "created_at": isoformat_utc(created_at),
        "data": data,
    }


@dataclass(frozen=True)
class _Claimed:
    id: int
    event: str
    payload: dict[str, Any]
    created_at: datetime
    url: str


@dataclass(frozen=True)
class _Outcome:
    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None


class WebhookWorker:
    """Deliver queued webhook events.

    Attributes:
        sessions: Makes the database sessions of the claims and the records.
        batch_size: Deliveries claimed at once.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        secret: str,
        timeout: float,
        allowed_networks: tuple[IPNetwork, ...] = (),
        batch_size: int = BATCH_SIZE,
    ) -> None:
        """Prepare the worker (its HTTP client connects on demand).

        Args:
            sessions: Session factory bound to the app's engine.
            secret: WEBHOOK_SECRET, the signing key; must not be empty.
            timeout: WEBHOOK_TIMEOUT: seconds for each of connecting, sending and waiting.
            allowed_networks: WEBHOOK_ALLOWED_NETWORKS.
            batch_size: Deliveries claimed at once.

        Raises:
            ValueError: If ``secret`` is empty.
        """
        if not secret:
            msg = "WEBHOOK_SECRET must be set to deliver webhooks"
            raise ValueError(msg)
        self.sessions = sessions
        self.batch_size = batch_size
        self._secret = secret
        self._timeout = timeout
        self._allowed = allowed_networks
        # A claim outlives the time its whole batch can take: connecting, sending and waiting
        # for the answer of every delivery in it, each bounded by the timeout.
        self._lease = timedelta(seconds=batch_size * 3 * timeout + 30)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            # No proxy from the environment (it would connect instead of us, to any address),
            # no .netrc credentials.
            trust_env=False,
            # No connection reuse: the pool is keyed by address, and a TLS connection verified
            # for one host name must not carry another's deliveries.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def deliver_due(self, *, now: datetime | None = None) -> int:
        """Claim one batch of due deliveries and make an attempt at each.

        Args:
            now: Deliveries due at this time are claimed (default: now).

        Returns:
            The number of attempts made.
        """
        return self._deliver_batch(now or utcnow())

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Deliver until ``stop`` is set, polling every ``interval`` seconds when idle.

        An attempt in progress finishes before the loop ends (bounded by the timeout).

        Args:
            stop: Set it (from a signal handler) to stop after the current attempt.
            interval: Seconds between polls when nothing is due.
        """
        pruned_at: float | None = None
        while not stop.is_set():
            try:
                if pruned_at is None or time.monotonic() - pruned_at >= PRUNE_INTERVAL_SECONDS:
                    pruned_at = time.monotonic()
                    self.prune()
                made = self._deliver_batch(utcnow(), stop)
            except Exception:
                # The database went away, say; try again after a pause rather than exiting.
                logger.exception("delivering webhooks failed; retrying in %s s", interval)
                made = 0
            if made < self.batch_size:
                stop.wait(interval)

    def prune(self, *, before: datetime | None = None) -> int:
        """Delete finished deliveries (and their attempts) last changed before ``before``.

        Args:
            before: Cut-off time (default: ``RETENTION`` ago).

        Returns:
            The number of deliveries deleted.
        """
        cutoff = before or utcnow() - RETENTION
        with self.sessions() as session, session.begin():
            # A DELETE's result is a CursorResult (it has a rowcount); execute() is typed for any.
            result = cast(
                CursorResult[Any],
                session.execute(
                    delete(WebhookDelivery).where(
                        WebhookDelivery.status.in_(("succeeded", "dead")),
                        WebhookDelivery.updated_at < cutoff,
                    )
                ),
            )
        if result.rowcount:
            logger.info("deleted %s finished webhook deliveries", result.rowcount)
        return result.rowcount

    def _deliver_batch(self, now: datetime, stop: threading.Event | None = None) -> int:
        claimed = self._claim(now)
        for index, item in enumerate(claimed):
            if stop is not None and stop.is_set():
                # Give the rest of the batch back at once instead of after the lease.
                self._release([rest.id for rest in claimed[index:]])
                return index
            self._record(item.id, self._attempt(item))
        return len(claimed)

    def _claim(self, now: datetime) -> list[_Claimed]:
        with self.sessions() as session, session.begin():
            rows = session.execute(
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.event,
                    WebhookDelivery.payload,
                    WebhookDelivery.created_at,
                    Webhook.url,
                )
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(
                    WebhookDelivery.status.in_(("pending", "failed")),
                    WebhookDelivery.next_attempt_at <= now,
                    # A paused webhook keeps its deliveries until resumed; a ping still goes.
                    or_(Webhook.active.is_(True), WebhookDelivery.event == PING_EVENT),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(self.batch_size)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            ).all()
            claimed = [_Claimed(*row) for row in rows]
            if claimed:
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_([item.id for item in claimed]))
                    .values(next_attempt_at=utcnow() + self._lease)
                )
        return claimed

    def _release(self, delivery_ids: list[int]) -> None:
        with self.sessions() as session, session.begin():
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(delivery_ids))
                .values(next_attempt_at=utcnow())
            )

    def _attempt(self, item: _Claimed) -> _Outcome:
        attempted_at = utcnow()
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            target = resolve_target(item.url, self._allowed)
            body = encode_body(
                delivery_document(item.id, item.event, item.created_at, item.payload)
            )
            headers = signed_headers(
                self._secret,
                event=item.event,
                delivery_id=item.id,
                timestamp=int(time.time()),
                body=body,
            )
            status_code = self._post(target, body, headers)
            if 300 <= status_code < 400:
                error = f"HTTP {status_code}: redirects are not followed"
            elif not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except RefusedAddressError as exc:
            error = f"refused: {exc}"
        except httpx.TimeoutException:
            error = f"timed out (WEBHOOK_TIMEOUT={self._timeout:g} s)"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = round((time.monotonic() - started) * 1000)
        if error is not None:
            logger.info("webhook delivery %s (%s) failed: %s", item.id, item.event, error)
        return _Outcome(attempted_at, duration_ms, status_code, error and error[:ERROR_MAX_LENGTH])

    def _post(self, target: Target, body: bytes, headers: dict[str, str]) -> int:
        url = httpx.URL(target.url)
        host = f"[{target.host}]" if ":" in target.host else target.host
        extensions: dict[str, Any] = {}
        if target.scheme == "https":
            # TLS to the checked address, with the name of the URL for SNI and the certificate.
            extensions["sni_hostname"] = target.host
        with self._client.stream(
            "POST",
            url.copy_with(host=str(target.address)),
            content=body,
            headers={**headers, "Host": host if url.port is None else f"{host}:{url.port}"},
            extensions=extensions,
        ) as response:
            # The answer's body is not read: only the status counts.
            return response.status_code

    def _record(self, delivery_id: int, outcome: _Outcome) -> None:
        with self.sessions() as session, session.begin():
            delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None:
                return  # its webhook was deleted during the attempt
            delivery.attempts += 1
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    attempted_at=outcome.attempted_at,
                    status_code=outcome.status_code,
                    duration_ms=outcome.duration_ms,
                    error=outcome.error,
                )
            )
            delivery.last_status_code = outcome.status_code
            delivery.last_error = outcome.error
            if outcome.error is None:
                delivery.status, delivery.next_attempt_at = "succeeded", None
            elif delivery.attempts >= MAX_ATTEMPTS:
                delivery.status, delivery.next_attempt_at = "dead", None
                logger.warning(
                    "webhook delivery %s is dead after %s attempts", delivery.id, delivery.attempts
                )
            else:
                delivery.status = "failed"
                delivery.next_attempt_at = utcnow() + retry_delay(delivery.attempts)
