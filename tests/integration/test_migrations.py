"""The packaged migrations build exactly the schema the models describe."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, create_engine, inspect, make_url, text
from sqlalchemy.engine import Engine

from webapp.extensions import MIGRATIONS_DIR
from webapp.models import Base

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_schema(database_url: str) -> Iterator[str]:
    """URL of an empty database: a new schema that is the only one on the search path."""
    schema = f"migration_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_psycopg(database_url))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _psycopg(url: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _chatbot_db(args: list[str], env: dict[str, str], url: str) -> str:
    chatbot = str(Path(sys.executable).with_name("chatbot"))
    result = subprocess.run(
        [chatbot, "db", *args],
        env={**env, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _engine(url: str) -> Engine:
    return create_engine(_psycopg(url))


def test_upgrade_on_an_empty_database_matches_the_models(empty_schema, subprocess_env):
    engine = _engine(empty_schema)
    try:
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == []

        _chatbot_db(["upgrade"], subprocess_env, empty_schema)

        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, Base.metadata) == []
            head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
            assert context.get_current_revision() == head == "0007"

            # Autogenerate does not compare CHECK constraints; compare their names here.
            inspector = inspect(connection)
            for table in Base.metadata.sorted_tables:
                expected = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
                actual = {c["name"] for c in inspector.get_check_constraints(table.name)}
                assert actual == expected, table.name
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_every_table(empty_schema, subprocess_env):
    _chatbot_db(["upgrade"], subprocess_env, empty_schema)
    _chatbot_db(["downgrade", "base"], subprocess_env, empty_schema)
    engine = _engine(empty_schema)
    try:
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()


def test_upgrade_stores_addresses_in_canonical_form_and_keeps_look_alikes(
    empty_schema, subprocess_env
):
    _chatbot_db(["upgrade", "0005"], subprocess_env, empty_schema)
    full_width_admin = "\uff41\uff44\uff4d\uff49\uff4e@example.com"
    stored = [
        (1, full_width_admin),  # registered before the real one: its look-alike
        (2, "admin@example.com"),
        (3, "\uff42\uff4f\uff42@example.com"),
        (4, "carol@ex\u00c4mple.com"),
        (5, "dave@example.com"),
    ]
    engine = _engine(empty_schema)
    try:
        with engine.begin() as connection:
            for user_id, email in stored:
                connection.execute(
                    text(
                        "INSERT INTO users (id, email, password_hash, display_name)"
                        " VALUES (:id, :email, 'x', 'x')"
                    ),
                    {"id": user_id, "email": email},
                )

        output = _chatbot_db(["upgrade"], subprocess_env, empty_schema)

        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, email FROM users ORDER BY id")).all()
    finally:
        engine.dispose()
    # Nobody is lost or merged; the look-alike keeps its spelling and is reported.
    assert [tuple(row) for row in rows] == [
        (1, full_width_admin),
        (2, "admin@example.com"),
        (3, "bob@example.com"),
        (4, "carol@ex\u00e4mple.com"),
        (5, "dave@example.com"),
    ]
    assert f"user 1 keeps its address {full_width_admin!r}" in output, output
    assert "belongs to another account" in output


def _alembic_config() -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config
