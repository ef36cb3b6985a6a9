"""Alembic environment for Flask-Migrate: the engine and metadata come from the current app."""

from __future__ import annotations

import logging
from logging.config import fileConfig
from typing import Any

from alembic import context
from flask import current_app

config = context.config

# Configure logging from alembic.ini only when nothing did before (the `chatbot db` CLI). Inside
# a configured process (gunicorn, the test suite) fileConfig would replace its handlers.
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

_migrate = current_app.extensions["migrate"]
target_metadata = _migrate.db.metadata


def run_migrations_offline() -> None:
    """Emit the migration SQL to stdout (``chatbot db upgrade --sql``) without a database."""
    url = _migrate.db.engine.url.render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against the app's database."""

    def process_revision_directives(context: Any, revision: Any, directives: list[Any]) -> None:
        # An autogenerate run that found no change should not leave an empty revision behind.
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    configure_args = dict(_migrate.configure_args)
    configure_args.setdefault("process_revision_directives", process_revision_directives)

    with _migrate.db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **configure_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
