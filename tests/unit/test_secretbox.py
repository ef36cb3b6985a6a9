"""The provider-key box: sealed secrets open with any configured key, and only with one."""

import secrets

import pytest

from webapp.secretbox import SecretBox, SecretBoxError

OLD, NEW = secrets.token_urlsafe(48), secrets.token_urlsafe(48)


def test_a_sealed_secret_opens_and_does_not_show_the_plaintext():
    box = SecretBox([NEW])
    token = box.seal("sk-very-secret")
    assert "sk-very-secret" not in token
    assert box.open(token) == "sk-very-secret"
    assert NEW not in repr(box)


def test_rotation_keeps_old_secrets_readable_until_rekeyed():
    sealed_with_old = SecretBox([OLD]).seal("sk-1")
    both = SecretBox([NEW, OLD])
    assert both.open(sealed_with_old) == "sk-1"
    rekeyed = both.rotate(sealed_with_old)
    assert SecretBox([NEW]).open(rekeyed) == "sk-1"
    with pytest.raises(SecretBoxError, match="PROVIDER_KEY_SECRETS"):
        SecretBox([NEW]).open(sealed_with_old)


def test_without_keys_nothing_is_sealed():
    box = SecretBox([])
    assert not box.configured
    with pytest.raises(SecretBoxError, match="not set"):
        box.seal("sk-1")


def test_a_tampered_token_is_refused():
    box = SecretBox([NEW])
    token = box.seal("sk-1")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretBoxError):
        box.open(tampered)
