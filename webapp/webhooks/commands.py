"""``chatbot webhooks``: run the delivery worker, or deliver what is due once.

The commands build no Flask app: the worker needs the settings and a database engine only, and
skipping the app (and the bot it would import) keeps the long-running process small. They are
added to the ``chatbot`` group itself, which finds them without loading the app.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import sessionmaker

from webapp.connections import CONNECT_TIMEOUT
from webapp.logs import configure_logging
from webapp.settings import Settings, SettingsError
from webapp.webhooks.worker import WebhookWorker

__all__ = ["build_worker", "webhooks_cli"]

logger = logging.getLogger(__name__)

# One attempt at a time: the claim, the record, and the hourly prune each use one connection.
_POOL_SIZE = 2


def build_worker(settings: Settings, engine: Engine) -> WebhookWorker:
    """Build a webhook worker from settings and a database engine.

    Args:
        settings: The process settings.
        engine: Engine of the app's database.

    Returns:
        The worker; close it when done.

    Raises:
        click.ClickException: If WEBHOOK_SECRET is not set.
    """
    if not settings.webhook_secret:
        raise click.ClickException("WEBHOOK_SECRET is not set: webhooks cannot be signed.")
    return WebhookWorker(
        sessionmaker(bind=engine),
        secret=settings.webhook_secret,
        timeout=settings.webhook_timeout,
        allowed_networks=settings.webhook_allowed_networks,
    )


@contextmanager
def _worker_from_environment() -> Iterator[WebhookWorker]:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(
        "webhooks", settings.log_level, secrets=(settings.webhook_secret, settings.database_url)
    )
    engine = create_engine(
        settings.database_url,
        pool_size=_POOL_SIZE,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )
    try:
        worker = build_worker(settings, engine)
        try:
            yield worker
        finally:
            worker.close()
    finally:
        engine.dispose()


@click.group("webhooks")
def webhooks_cli() -> None:
    """Deliver queued webhook events (see docs/webhooks.md)."""


@webhooks_cli.command("run")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between polls for due deliveries when idle.",
)
def run_command(interval: float) -> None:
    """Deliver webhooks until SIGTERM or SIGINT (the chatbot-webhooks service)."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("%s received: stopping after the current attempt", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with _worker_from_environment() as worker:
        logger.info("webhook worker started (polling every %s s)", interval)
        worker.run(stop, interval=interval)
    logger.info("webhook worker stopped")


@webhooks_cli.command("deliver-due")
def deliver_due_command() -> None:
    """Make one attempt at every delivery due now, then exit."""
    total = 0
    with _worker_from_environment() as worker:
        while made := worker.deliver_due():
            total += made
            if made < worker.batch_size:
                break
    click.echo(f"{total} delivery attempt(s) made.")
