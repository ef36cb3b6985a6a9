"""Encrypt secrets kept in the database (the providers' API keys) with keys from the settings.

`cryptography`'s Fernet (AES-128-CBC with HMAC-SHA256, authenticated, timestamped) under a
`MultiFernet`: the first key encrypts, every key decrypts, so a new key can go first while the
previous one still opens what it sealed, until `SecretBox.rotate` re-encrypted it. Each Fernet
key is derived from one PROVIDER_KEY_SECRETS entry with HKDF-SHA256, so operators deal in
random strings like the other deployment secrets.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SecretBox", "SecretBoxError"]

_HKDF_INFO = b"chatbot provider api keys v1"


class SecretBoxError(Exception):
    """Raised when a secret cannot be sealed (no key configured) or opened (wrong key)."""


def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    """Seal and open secrets with the configured keys; holds no secret in its ``repr``."""

    def __init__(self, secrets: Sequence[str]) -> None:
        """Derive one Fernet key per secret; the first one encrypts.

        Args:
            secrets: The PROVIDER_KEY_SECRETS entries, newest first; may be empty (then
                nothing can be sealed or opened).
        """
        self._box = MultiFernet([_fernet(secret) for secret in secrets]) if secrets else None

    def __repr__(self) -> str:
        return f"SecretBox(configured={self.configured})"

    @property
    def configured(self) -> bool:
        """Whether any key is configured."""
        return self._box is not None

    def seal(self, plaintext: str) -> str:
        """Encrypt a secret with the first key.

        Raises:
            SecretBoxError: If no key is configured.
        """
        return self._require().encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        """Decrypt a sealed secret with whichever configured key sealed it.

        Raises:
            SecretBoxError: If no key is configured, or none of them sealed it.
        """
        try:
            return self._require().decrypt(token.encode()).decode()
        except InvalidToken as exc:
            msg = "the secret was sealed with a key that is not in PROVIDER_KEY_SECRETS"
            raise SecretBoxError(msg) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a sealed secret with the first key (a no-op in meaning).

        Raises:
            SecretBoxError: If no key is configured, or none of them sealed it.
        """
        try:
            return self._require().rotate(token.encode()).decode()
        except InvalidToken as exc:
            msg = "the secret was sealed with a key that is not in PROVIDER_KEY_SECRETS"
            raise SecretBoxError(msg) from exc

    def _require(self) -> MultiFernet:
        if self._box is None:
            msg = "PROVIDER_KEY_SECRETS is not set: provider API keys cannot be stored"
            raise SecretBoxError(msg)
        return self._box
