"""Operator commands added to every app's CLI: ``create-admin``, ``catalogue`` (seed, rekey; see
:mod:`webapp.catalogue_commands`) and Flask-Migrate's ``db``.

They run in an app context (``chatbot create-admin`` builds the "all" app, see
:mod:`webapp.cli`); the services know nothing of the command line.
"""

from __future__ import annotations

import os

import click
from flask import Flask
from flask.cli import with_appcontext

from webapp.catalogue_commands import catalogue_cli
from webapp.errors import ValidationError
from webapp.extensions import db
from webapp.services import accounts, audit

__all__ = ["ADMIN_PASSWORD_ENV", "create_admin_command", "register_commands"]

ADMIN_PASSWORD_ENV = "CHATBOT_ADMIN_PASSWORD"  # noqa: S105 - a variable name, not a secret


@click.command("create-admin")
@click.option("--email", required=True, help="Email address of the admin account.")
@click.option("--display-name", default=None, help="Display name for a new account.")
@click.option(
    "--reset-password",
    is_flag=True,
    help="Also set the password of an existing account.",
)
@with_appcontext
def create_admin_command(email: str, display_name: str | None, reset_password: bool) -> None:
    """Create an admin account, or promote an existing user; safe to re-run.

    The password is read from CHATBOT_ADMIN_PASSWORD, or prompted for (hidden) when a new
    account or --reset-password needs one. An existing account keeps its password otherwise.
    """
    password = os.environ.get(ADMIN_PASSWORD_ENV) or None
    needs_password = reset_password or accounts.get_user_by_email(db.session(), email) is None
    if password is None and needs_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        result = accounts.ensure_admin(
            db.session(),
            email=email,
            password=password,
            display_name=display_name,
            reset_password=reset_password,
        )
    except ValidationError as exc:
        raise click.ClickException(exc.message) from None

    user = result.user
    if result.changed:
        audit.record(
            db.session(),
            action="cli.admin_provisioned",
            target_type="user",
            target_id=user.id,
            details={
                "created": result.created,
                "promoted": result.promoted,
                "credentials_reset": result.password_changed,
            },
        )
        db.session.commit()
    if result.created:
        click.echo(f"Created admin account {user.email} (id {user.id}).")
        return
    if result.promoted:
        click.echo(f"Promoted existing user {user.email} (id {user.id}) to admin.")
    if result.password_changed:
        click.echo(f"Reset the password of {user.email}.")
    if not result.changed:
        click.echo(f"{user.email} is already an admin; nothing changed.")
    if not user.is_active:
        click.echo(f"Warning: {user.email} is disabled and cannot log in.", err=True)


def register_commands(app: Flask) -> None:
    """Add the operator commands to an app's CLI (``chatbot`` and ``flask --app webapp.app``).

    Args:
        app: The application.
    """
    app.cli.add_command(create_admin_command)
    app.cli.add_command(catalogue_cli)
