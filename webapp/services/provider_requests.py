"""The few requests the admin side makes to a model provider: list its models, one short reply.

Used by the catalogue's admin (discover, test a model) and the status page (reachability).
Plain ``httpx``, no LangChain and no OpenAI SDK: each is one request with the provider's key,
extra headers and timeout. A failure is reported by HTTP status or exception class name only,
never by message: a provider's error may quote part of the key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "REPLY_EXCERPT_CHARS",
    "TEST_MAX_TOKENS",
    "UPSTREAM_ERRORS",
    "Upstream",
    "chat_once",
    "failure_reason",
    "list_models",
]

# A provider that does not even accept the connection is down: no need to wait its whole timeout.
CONNECT_TIMEOUT_SECONDS = 5.0
TEST_MAX_TOKENS = 16
TEST_PROMPT = "Reply with one short sentence: are you there?"
REPLY_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Upstream:
    """Where and how to reach a provider.

    Attributes:
        base_url: Its base URL (``.../v1``).
        api_key: The decrypted key, or None (kept out of ``repr``).
        timeout: Seconds a request may take.
        headers: Extra headers sent with every request.
    """

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def request_headers(self) -> dict[str, str]:
        """Return the headers of a request: the extra ones and the key as a bearer token."""
        result = dict(self.headers)
        if self.api_key:
            result["Authorization"] = f"Bearer {self.api_key}"
        return result

    def timeouts(self, total: float | None = None) -> httpx.Timeout:
        """Return the request's timeouts: ``total`` (default: the provider's), connect shorter."""
        seconds = self.timeout if total is None else total
        return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_SECONDS))

    def url(self, path: str) -> str:
        """Return the URL of an API path (``/models``)."""
        return f"{self.base_url.rstrip('/')}{path}"


def failure_reason(exc: BaseException) -> str:
    """Return what to say of a failed request: ``HTTP 401`` or an exception class name."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


UPSTREAM_ERRORS = (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError)
"""What a request here may raise: transport errors, error statuses, an unexpected body."""


def list_models(upstream: Upstream, *, timeout: float | None = None) -> list[str]:
    """Return the model ids of ``GET {base_url}/models``, in the provider's order.

    Args:
        upstream: The provider.
        timeout: Seconds, instead of the provider's own (the status page's are short).

    Returns:
        The ids.

    Raises:
        httpx.HTTPError: If the provider cannot be reached or answers an error status.
        ValueError: If the answer is not an OpenAI model list (also KeyError, TypeError...:
            see ``UPSTREAM_ERRORS``).
    """
    response = httpx.get(
        upstream.url("/models"),
        headers=upstream.request_headers(),
        timeout=upstream.timeouts(timeout),
        follow_redirects=False,
    )
    response.raise_for_status()
    data = response.json()["data"]
    if not isinstance(data, list):
        raise TypeError("data is not a list")
    return [str(item["id"]) for item in data]


def chat_once(upstream: Upstream, model: str) -> dict[str, Any]:
    """Ask a model for one short, non-streamed reply and report how it went.

    Args:
        upstream: The provider.
        model: The model's id at the provider.

    Returns:
        ``{"ok", "latency_ms", "reply" (its first 200 characters), "error"}``; ``error`` is an
        HTTP status or an exception class name, null when ``ok``.
    """
    started = time.perf_counter()
    reply, error = "", None
    try:
        response = httpx.post(
            upstream.url("/chat/completions"),
            headers=upstream.request_headers(),
            json={
                "model": model,
                "messages": [{"role": "user", "content": TEST_PROMPT}],
                "max_tokens": TEST_MAX_TOKENS,
                "stream": False,
            },
            timeout=upstream.timeouts(),
            follow_redirects=False,
        )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        reply = str(content or "")[:REPLY_EXCERPT_CHARS]
    except UPSTREAM_ERRORS as exc:
        error = failure_reason(exc)
    return {
        "ok": error is None,
        "latency_ms": int((time.perf_counter() - started) * 1000),
        "reply": reply,
        "error": error,
    }
