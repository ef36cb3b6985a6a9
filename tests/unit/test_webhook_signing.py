"""Signing webhook deliveries, and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from datetime import timedelta

from webapp.webhooks.signing import encode_body, sign, signed_headers
from webapp.webhooks.worker import MAX_ATTEMPTS, retry_delay


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"event":"ping"}'
    expected = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("secret", 1700000000, body) == f"sha256={expected}"


def test_the_signature_changes_with_body_timestamp_and_secret():
    base = sign("secret", 1700000000, b"{}")
    assert sign("secret", 1700000001, b"{}") != base
    assert sign("secret", 1700000000, b"{ }") != base
    assert sign("other", 1700000000, b"{}") != base


def test_signed_headers_carry_event_delivery_timestamp_and_signature():
    body = encode_body({"b": 1, "a": "é"})
    assert body == '{"a":"é","b":1}'.encode()
    headers = signed_headers(
        "secret", event="user.registered", delivery_id=7, timestamp=5, body=body
    )
    assert headers == {
        "Content-Type": "application/json",
        "X-Chatbot-Event": "user.registered",
        "X-Chatbot-Delivery": "7",
        "X-Chatbot-Timestamp": "5",
        "X-Chatbot-Signature": sign("secret", 5, body),
    }


def test_retries_back_off_exponentially_up_to_an_hour():
    delays = [retry_delay(n) for n in range(1, MAX_ATTEMPTS)]
    assert delays[:3] == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2)]
    assert all(
        later == min(2 * earlier, timedelta(hours=1))
        for earlier, later in itertools.pairwise(delays)
    )
    assert retry_delay(50) == timedelta(hours=1)
