"""``chatbot catalogue``: seed the model catalogue from a file, re-encrypt the provider keys.

The playbook runs ``chatbot catalogue seed FILE`` with the providers and models of the
inventory (their keys from the vault) and ``chatbot catalogue rekey`` after rotating
PROVIDER_KEY_SECRETS. They run in an app context (the "all" app, see :mod:`webapp.cli`); the
work is :mod:`webapp.services.catalogue_seed`'s. Neither prints a key.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from webapp.errors import ApiError
from webapp.extensions import db, get_redis
from webapp.services.catalogue_seed import SeedError, rekey_provider_keys, seed_catalogue

__all__ = ["catalogue_cli"]


@click.group("catalogue")
def catalogue_cli() -> None:
    """Manage the model catalogue from the command line (the playbook)."""


@catalogue_cli.command("seed")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--overwrite",
    is_flag=True,
    help="Also set the file's fields on providers and models that exist (else they are left"
    " as admins changed them).",
)
@with_appcontext
def seed_command(file: Path, overwrite: bool) -> None:
    """Create the providers and models of FILE (JSON) that are missing; safe to re-run.

    FILE holds {"providers": [{name, base_url, api_key?, timeout_seconds?, extra_headers?}],
    "models": [{provider, name, upstream_id, ..., "default"?}]} with the admin API's fields.
    """
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        # The reason without the text: a key in a malformed file must not reach the output.
        raise click.ClickException(f"{file} is not a JSON file ({type(exc).__name__})") from None
    try:
        summary = seed_catalogue(
            db.session(),
            document,
            overwrite=overwrite,
            settings=current_app.extensions["settings"],
            redis=get_redis(current_app),
        )
    except SeedError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    click.echo(f"Catalogue seeded from {file}: {summary}.")


@catalogue_cli.command("rekey")
@with_appcontext
def rekey_command() -> None:
    """Re-encrypt every stored provider key with the first PROVIDER_KEY_SECRETS key.

    Run it after putting a new key first in PROVIDER_KEY_SECRETS (the previous one second);
    then the previous one can be removed.
    """
    try:
        count = rekey_provider_keys(
            db.session(),
            settings=current_app.extensions["settings"],
            redis=get_redis(current_app),
        )
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Re-encrypted {count} provider key(s) with the first PROVIDER_KEY_SECRETS key.")
