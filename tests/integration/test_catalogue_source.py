"""The catalogue read side against real PostgreSQL and Redis: stored entries, keys, versions."""

from webapp.catalogue import (
    CatalogueSource,
    bump_catalogue_version,
    load_catalogue,
)
from webapp.extensions import db, get_redis
from webapp.models import ChatModel, Provider
from webapp.secretbox import SecretBox


def _store(box: SecretBox, **model_fields) -> None:
    provider = Provider(
        name="second",
        base_url="http://127.0.0.1:9/v1",
        api_key_encrypted=box.seal("sk-second"),
        api_key_last4="cond",
        extra_headers={"X-Team": "blue"},
    )
    fields = {"name": "second-model", "upstream_id": "up-1", "display_name": "Second"}
    db.session.add(ChatModel(provider=provider, **(fields | model_fields)))
    db.session.commit()


def test_stored_models_join_the_managed_ones_and_may_become_the_default(app, settings):
    box = SecretBox(settings.provider_key_secrets)
    with app.app_context():
        assert load_catalogue(db.session, settings, box).default_name == "offline"
        _store(box, is_default=True)
        catalogue = load_catalogue(db.session, settings, box)
    assert list(catalogue.models) == ["offline", "second-model"]
    assert catalogue.default_name == "second-model"
    model = catalogue.models["second-model"]
    assert model.provider.api_key == "sk-second"
    assert model.provider.extra_headers == {"X-Team": "blue"}
    assert model.allowed_roles == {"user", "admin"}


def test_a_key_sealed_with_an_unknown_secret_leaves_the_provider_without_one(app, settings):
    with app.app_context():
        _store(SecretBox(["x" * 40]))
        catalogue = load_catalogue(db.session, settings, SecretBox(settings.provider_key_secrets))
    provider = catalogue.models["second-model"].provider
    assert provider.api_key == ""
    assert provider.key_error is not None


def test_the_source_reloads_only_when_the_version_moves(app, settings):
    box = SecretBox(settings.provider_key_secrets)
    loads: list[str] = []

    def load(version: str):
        loads.append(version)
        with app.app_context():
            return load_catalogue(db.session, settings, box, version)

    with app.app_context():
        redis = get_redis(app)
        source = CatalogueSource(redis, load)
        assert source.current() is source.current()
        assert len(loads) == 1
        _store(box)
        # Committed but not announced: the snapshot stays.
        assert "second-model" not in source.current().models
        version = bump_catalogue_version(redis)
        assert "second-model" in source.current().models
        assert loads == ["", version]
