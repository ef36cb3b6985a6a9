"""The ``chatbot`` command: Flask's CLI for this app, with the operator commands.

``chatbot db upgrade`` applies the packaged migrations; ``chatbot create-admin`` provisions an
admin account (:mod:`webapp.commands`); ``chatbot webhooks`` runs the delivery worker
(:mod:`webapp.webhooks.commands`). Settings come from the environment, as for the services.

This module is the top of the package: nothing imports it. It imports the app factory only
when a command needs the app, so that ``chatbot webhooks run`` (a long-running process) never
loads the web app's modules (measured: 66 MB resident instead of 86 MB).
"""

from __future__ import annotations

from flask import Flask
from flask.cli import FlaskGroup, NoAppException

from webapp.services_list import ALL
from webapp.settings import SettingsError
from webapp.webhooks.commands import webhooks_cli

__all__ = ["cli", "main"]


def _create_cli_app() -> Flask:
    from webapp.app import create_app  # only here: see the module's docstring

    try:
        return create_app(ALL)
    except SettingsError as exc:
        # NoAppException is what Flask's CLI reports as a one-line error (also under --help,
        # which lists commands) rather than a traceback.
        raise NoAppException(str(exc)) from None


cli = FlaskGroup(
    create_app=_create_cli_app,
    # Configuration comes from the environment (the systemd EnvironmentFile in production);
    # silently picking up a stray .env file in the current directory would be a surprise.
    load_dotenv=False,
    help="Manage the chat bot: database migrations (db), accounts (create-admin) and more.",
)
# Found without building an app: the long-running worker builds no Flask app, and imports
# no blueprint (nor the bot).
cli.add_command(webhooks_cli)


def main() -> None:
    """Run the ``chatbot`` command line."""
    cli.main(prog_name="chatbot")
