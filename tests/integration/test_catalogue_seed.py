"""``chatbot catalogue seed`` and ``rekey``: idempotent seeding, --overwrite, key rotation."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.fakes.openai_server import FakeOpenAIServer
from webapp.extensions import REDIS_EXTENSION, db
from webapp.llm.catalogue import CATALOGUE_VERSION_KEY
from webapp.models import AuditEvent, ChatModel, Provider
from webapp.secretbox import SecretBox, SecretBoxError
from webapp.services import catalogue_admin

pytestmark = pytest.mark.integration

API_KEY = "sk-seeded-secret-0123456789abcdef"
MODELS = "/api/v1/admin/models"


def document(server: FakeOpenAIServer, **model_changes: Any) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "vllm",
                "base_url": server.base_url,
                "api_key": API_KEY,
                "timeout_seconds": 30,
                "extra_headers": {"X-Team": "chat"},
            }
        ],
        "models": [
            # The fallback first: the order in the file does not matter.
            {"provider": "vllm", "name": "big", "upstream_id": "big-1", "fallback": "small"},
            {
                "provider": "vllm",
                "name": "small",
                "upstream_id": "small-1",
                "display_name": "Small",
                "price_input_per_mtok": "0.1",
                "default": True,
                **model_changes,
            },
        ],
    }


def write(tmp_path: Path, content: Any, name: str = "catalogue.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def stored(app) -> dict[str, dict[str, Any]]:
    with app.app_context():
        models = {
            m.name: {
                "display_name": m.display_name,
                "is_default": m.is_default,
                "fallback": m.fallback.name if m.fallback else None,
                "upstream_id": m.upstream_id,
            }
            for m in db.session.scalars(select(ChatModel))
        }
        db.session.remove()
    return models


def playbook_events(app) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        events = [(e.action, e.details.get("actor")) for e in rows]
        db.session.remove()
    return events


def test_seed_creates_then_changes_nothing(app, runner, tmp_path, fake_openai):
    path = write(tmp_path, document(fake_openai))

    first = runner.invoke(args=["catalogue", "seed", str(path)])
    assert first.exit_code == 0, first.output
    assert "providers: 1 created, 0 updated, 0 unchanged" in first.output
    assert "models: 2 created, 0 updated, 0 unchanged" in first.output
    version = app.extensions[REDIS_EXTENSION].get(CATALOGUE_VERSION_KEY)
    assert version is not None
    assert stored(app) == {
        "big": {
            "display_name": "big",
            "is_default": False,
            "fallback": "small",
            "upstream_id": "big-1",
        },
        "small": {
            "display_name": "Small",
            "is_default": True,
            "fallback": None,
            "upstream_id": "small-1",
        },
    }
    assert playbook_events(app) == [
        ("provider.create", "playbook"),
        ("model.create", "playbook"),
        ("model.create", "playbook"),
    ]

    second = runner.invoke(args=["catalogue", "seed", str(path)])
    assert second.exit_code == 0, second.output
    assert "providers: 0 created, 0 updated, 1 unchanged" in second.output
    assert "models: 0 created, 0 updated, 2 unchanged" in second.output
    # Nothing changed: no new version, no new audit event.
    assert app.extensions[REDIS_EXTENSION].get(CATALOGUE_VERSION_KEY) == version
    assert len(playbook_events(app)) == 3
    assert API_KEY not in first.output + second.output
    with app.app_context():
        (provider,) = db.session.scalars(select(Provider)).all()
        assert provider.api_key_last4 == API_KEY[-4:]
        assert API_KEY not in (provider.api_key_encrypted or "")
        db.session.remove()


def test_seed_keeps_what_admins_changed_unless_told_to_overwrite(
    app, client, runner, auth, tmp_path, fake_openai
):
    path = write(tmp_path, document(fake_openai))
    assert runner.invoke(args=["catalogue", "seed", str(path)]).exit_code == 0
    admin = auth.admin()
    small = next(
        m
        for m in client.get(MODELS, headers=admin.headers).get_json()["models"]
        if m["name"] == "small"
    )
    changed = client.patch(
        f"{MODELS}/{small['id']}",
        json={"display_name": "Renamed by an admin"},
        headers=admin.headers,
    )
    assert changed.status_code == 200

    kept = runner.invoke(args=["catalogue", "seed", str(path)])
    assert kept.exit_code == 0, kept.output
    assert stored(app)["small"]["display_name"] == "Renamed by an admin"

    overwritten = runner.invoke(args=["catalogue", "seed", "--overwrite", str(path)])
    assert overwritten.exit_code == 0, overwritten.output
    assert "providers: 0 created, 0 updated, 1 unchanged" in overwritten.output
    assert "models: 0 created, 1 updated, 1 unchanged" in overwritten.output
    assert stored(app)["small"]["display_name"] == "Small"


def test_seed_refuses_a_bad_entry_and_changes_nothing(app, runner, tmp_path, fake_openai):
    bad = document(fake_openai, upstream_id="")
    result = runner.invoke(args=["catalogue", "seed", str(write(tmp_path, bad))])
    assert result.exit_code != 0
    assert "models[1].upstream_id: upstream_id must not be empty" in result.output
    assert stored(app) == {}
    with app.app_context():
        assert db.session.scalars(select(Provider)).all() == []
        db.session.remove()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([], "must be a JSON object"),
        ({"providers": {}}, "providers must be a list"),
        ({"extra": []}, "unknown section 'extra'"),
        ({"models": [{"name": "a", "provider": "x", "upstream_id": "a"}]}, "models[0].provider"),
        ({"providers": [{"name": "a", "base_url": "http://x"}] * 2}, "'a' is given twice"),
        (
            {
                "providers": [{"name": "p", "base_url": "http://x"}],
                "models": [
                    {"provider": "p", "name": "a", "upstream_id": "a", "fallback": "b"},
                    {"provider": "p", "name": "b", "upstream_id": "b", "fallback": "a"},
                ],
            },
            "form a cycle",
        ),
        ({"providers": [{"name": "offline", "base_url": "http://x"}]}, "providers[0].name"),
    ],
)
def test_seed_names_what_is_wrong(app, runner, tmp_path, content, message):
    result = runner.invoke(args=["catalogue", "seed", str(write(tmp_path, content))])
    assert result.exit_code != 0
    assert message in result.output


def test_seed_refuses_a_file_that_is_not_json(runner, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"providers": [{"api_key": "' + API_KEY, encoding="utf-8")
    result = runner.invoke(args=["catalogue", "seed", str(path)])
    assert result.exit_code != 0
    assert "is not a JSON file" in result.output
    assert API_KEY not in result.output


def test_rekey_moves_every_key_to_the_first_secret(app, make_app, tmp_path, fake_openai):
    old, new = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    before = make_app("all", PROVIDER_KEY_SECRETS=old)
    path = write(tmp_path, document(fake_openai))
    assert before.test_cli_runner().invoke(args=["catalogue", "seed", str(path)]).exit_code == 0

    rotating = make_app("all", PROVIDER_KEY_SECRETS=f"{new},{old}")
    result = rotating.test_cli_runner().invoke(args=["catalogue", "rekey"])

    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 provider key(s)" in result.output
    assert API_KEY not in result.output
    with rotating.app_context():
        (provider,) = db.session.scalars(select(Provider)).all()
        token = provider.api_key_encrypted or ""
        db.session.remove()
    # Only the new secret is needed now; the old one alone no longer opens it.
    assert SecretBox([new]).open(token) == API_KEY
    with pytest.raises(SecretBoxError):
        SecretBox([old]).open(token)
    # And the app with only the new secret reaches the provider with the key.
    after = make_app("all", PROVIDER_KEY_SECRETS=new)
    with after.app_context():
        provider_id = db.session.scalars(select(Provider.id)).one()
        db.session.remove()
    with after.app_context():
        listed = catalogue_admin.discover_models(
            db.session(), provider_id, after.extensions["settings"]
        )
        db.session.remove()
    assert listed
    assert fake_openai.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"
    with after.app_context():
        actions = db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "cli.provider_keys_rekeyed")
        ).all()
        db.session.remove()
    assert actions == [{"providers": 1}]


def test_rekey_refuses_a_key_no_secret_opens(app, make_app, tmp_path, fake_openai):
    first = make_app("all", PROVIDER_KEY_SECRETS=secrets.token_urlsafe(48))
    path = write(tmp_path, document(fake_openai))
    assert first.test_cli_runner().invoke(args=["catalogue", "seed", str(path)]).exit_code == 0
    other = make_app("all", PROVIDER_KEY_SECRETS=secrets.token_urlsafe(48))
    result = other.test_cli_runner().invoke(args=["catalogue", "rekey"])
    assert result.exit_code != 0
    assert "provider 'vllm'" in result.output
