"""Signing webhook deliveries: what the receiver checks to trust a POST.

The signature is ``sha256=`` followed by the hex HMAC-SHA256, keyed with WEBHOOK_SECRET, of
``"<timestamp>.<body>"``: the Unix time of the attempt (also sent as ``X-Chatbot-Timestamp``), a
dot, and the raw request body. Covering the timestamp lets receivers refuse replays of an old
delivery; docs/webhooks.md shows how to verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

__all__ = [
    "CONTENT_TYPE",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "encode_body",
    "sign",
    "signed_headers",
]

EVENT_HEADER = "X-Chatbot-Event"
DELIVERY_HEADER = "X-Chatbot-Delivery"
TIMESTAMP_HEADER = "X-Chatbot-Timestamp"
SIGNATURE_HEADER = "X-Chatbot-Signature"
CONTENT_TYPE = "application/json"


def encode_body(document: dict[str, Any]) -> bytes:
    """Return the exact bytes POSTed for a delivery document (compact UTF-8 JSON).

    Args:
        document: The JSON document.

    Returns:
        Its encoding; the signature covers exactly these bytes.
    """
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature of one delivery attempt.

    Args:
        secret: WEBHOOK_SECRET.
        timestamp: Unix time of the attempt, in whole seconds.
        body: The raw request body.

    Returns:
        ``sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(
    secret: str, *, event: str, delivery_id: int, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the headers of one delivery attempt, signature included.

    Args:
        secret: WEBHOOK_SECRET.
        event: The event name, such as ``user.registered``.
        delivery_id: The delivery's id (the same on every retry: receivers can deduplicate).
        timestamp: Unix time of the attempt.
        body: The raw request body.

    Returns:
        ``Content-Type`` and the four ``X-Chatbot-*`` headers.
    """
    return {
        "Content-Type": CONTENT_TYPE,
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
