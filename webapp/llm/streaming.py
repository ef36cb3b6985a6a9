"""Stream chat completions over kept-alive connections, with nothing per token but the text.

What runs where, and why:

- LangGraph is the bot's graph (nodes, state, context): it runs once per reply, not per token.
- A streamed reply from an OpenAI-compatible server (the hot path) goes through this module:
  one `httpx.Client` per process and endpoint (its connections kept alive and reused across
  replies), the request body written once as JSON, the Server-Sent Events split into lines and
  each `data:` line parsed with `json`; the generate node receives plain text pieces. Per token
  that is one `json.loads` instead of the openai SDK's pydantic model, langchain's
  `AIMessageChunk` and `ChatGenerationChunk`, and the merge of all chunks at the end.
- langchain-openai's `ChatOpenAI` stays the model object: it holds the settings this module
  streams with (`LeanChatOpenAI` is a `ChatOpenAI`), and answers every other call (`invoke`,
  `batch`, tool calling, structured output, the Responses API) exactly as before; models that
  this module cannot stream for (o-series, Responses API models) stream through it too.
- The offline model and test fakes are langchain chat models: they stream through `stream()`.

Why a connection per reply before: the openai SDK stops reading a stream at ``data: [DONE]`` and
closes the response before the end of the chunked body arrived, so the HTTP client cannot put
the connection back into its pool. Here the body is read to its end first.

What the SDK did that is kept: the same request body, the bounded retries (`max_retries` of
the model, on connection errors, timeouts, 408, 409, 429 and 5xx, with the SDK's backoff and
``Retry-After``), the timeout (connect, read between chunks, write, pool), an error for any
non-2xx status or an ``error`` event in the stream. Closing a stream mid-reply (a stop) closes
its connection, so the model server sees the client go and stops generating. LangChain
callbacks (tracing) see no per-token events on this path.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

__all__ = [
    "CompletionStream",
    "LeanChatOpenAI",
    "ModelResponseError",
    "TextStreamingModel",
    "model_http_client",
    "reset_model_http_clients",
]

# The openai SDK's retry policy (openai/_constants.py, _base_client.py), so a model answers
# with the same bounded worst case whichever path streams it.
_INITIAL_RETRY_DELAY = 0.5
_MAX_RETRY_DELAY = 8.0
_MAX_RETRY_AFTER = 120.0
_RETRY_STATUSES = frozenset({408, 409, 429})
# Keep-alive pool per endpoint. No cap on open connections: the reply runner bounds how many
# replies stream at once; idle ones are kept for as many replies as usually overlap, for 5 s
# (httpx's and the openai SDK's default): not longer than servers such as uvicorn (vLLM) keep
# an idle connection, so a reply seldom picks one the server is just closing (a connection
# the server closed is noticed before it is used, and the retry covers the rest).
_POOL_LIMITS = httpx.Limits(
    max_connections=None, max_keepalive_connections=256, keepalive_expiry=5.0
)
# How much of an error response is read for the exception message.
_ERROR_BODY_BYTES = 4096
# How much is read after [DONE] to keep the connection (normally nothing but the body's end).
_DRAIN_BYTES = 65536
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}
_O_SERIES = re.compile(r"^o\d")


class ModelResponseError(Exception):
    """The model server answered with an error (a non-2xx status or an error event).

    Attributes:
        status: The HTTP status, or None for an error event inside a stream.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        """Keep the status beside the message."""
        super().__init__(message)
        self.status = status


# -- one HTTP client per process and endpoint -------------------------------------------------

_ClientKey = tuple[str, str, float, tuple[tuple[str, str], ...]]
_clients: dict[_ClientKey, httpx.Client] = {}
_clients_lock = threading.Lock()
_clients_pid = os.getpid()


def reset_model_http_clients() -> None:
    """Forget the HTTP clients of this process (runs in every forked child by itself).

    A forked child must not use its parent's connections (both would read the same sockets),
    nor a lock some parent thread held at the fork. The clients are dropped, not closed:
    closing would shut sockets the parent still uses.
    """
    global _clients, _clients_lock, _clients_pid
    _clients = {}
    _clients_lock = threading.Lock()
    _clients_pid = os.getpid()


os.register_at_fork(after_in_child=reset_model_http_clients)


def model_http_client(
    base_url: str,
    api_key: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """Return this process's HTTP client for a model endpoint, creating it on first use.

    One client per (base URL, key, timeout, extra headers) and process, shared by every thread
    (httpx clients are thread-safe): its connections stay open between replies, and across
    catalogue changes that leave the provider as it was.

    Args:
        base_url: The OpenAI-compatible base URL (ending in ``/v1``).
        api_key: The bearer token sent with every request.
        timeout: Seconds for connecting, for each read and write, and for a pooled connection.
        headers: Extra headers sent with every request (a provider's ``extra_headers``).

    Returns:
        The shared client.
    """
    extra = tuple(sorted((headers or {}).items()))
    key = (base_url, api_key, timeout, extra)
    if os.getpid() != _clients_pid:  # forked without the at-fork hook (e.g. os.fork in C code)
        reset_model_http_clients()
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = httpx.Client(
                    base_url=base_url.rstrip("/") + "/",
                    headers={**dict(extra), "Authorization": f"Bearer {api_key}"},
                    timeout=httpx.Timeout(timeout),
                    limits=_POOL_LIMITS,
                    follow_redirects=False,
                )
                _clients[key] = client
    return client


# -- a streamed completion --------------------------------------------------------------------


class CompletionStream:
    """The text pieces of one streamed completion, then its usage and model name.

    Iterate it for the text; `usage` and `model` are set once the iteration ended. `close()`
    ends it early (a stop): the connection is closed so the server stops generating.

    Attributes:
        usage: ``(prompt_tokens, completion_tokens)`` from the usage chunk, or None.
        model: The model named by the server's chunks, or None.
    """

    def __init__(self, response: httpx.Response) -> None:
        """Wrap an open streamed response (status 2xx)."""
        self._response = response
        self.usage: tuple[int, int] | None = None
        self.model: str | None = None

    def __iter__(self) -> Iterator[str]:
        """Yield the content of each chunk that has some."""
        response = self._response
        chunks = response.iter_bytes()
        try:
            for data in _sse_data(chunks):
                if data == b"[DONE]":
                    # Read the rest of the body (only the end of the chunked body should be
                    # left): a connection whose response was read to its end is kept alive.
                    # A server that keeps sending loses its connection instead.
                    drained = 0
                    for chunk in chunks:
                        drained += len(chunk)
                        if drained > _DRAIN_BYTES:
                            break
                    return
                yield from self._take(json.loads(data))
        finally:
            response.close()

    def _take(self, payload: Any) -> Iterator[str]:
        if not isinstance(payload, dict):
            return
        error = payload.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else None
            raise ModelResponseError(str(message or "An error occurred during streaming"))
        model = payload.get("model")
        if model and isinstance(model, str):
            self.model = model
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self.usage = (
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
            )
        for choice in payload.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if content and isinstance(content, str):
                yield content

    def close(self) -> None:
        """Close the response (and, unless it was read to its end, its connection)."""
        self._response.close()


def _sse_data(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Yield the data of each Server-Sent Event (multi-line data joined by newlines)."""
    buffer = b""
    data: list[bytes] = []
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # Other fields (event:, id:, retry:) and comments (":") carry nothing we use.
    # An event the body ended in the middle of is dropped, as the SSE standard says.


def _retry_after(headers: httpx.Headers) -> float | None:
    # Like the SDK: retry-after-ms, then Retry-After in seconds (HTTP dates are not worth it).
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value) / scale
            except ValueError:
                return None
    return None


def _should_retry(response: httpx.Response) -> bool:
    retry_after = _retry_after(response.headers)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > _MAX_RETRY_AFTER:
        return False
    explicit = response.headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return bool(explicit == "true")
    return response.status_code in _RETRY_STATUSES or response.status_code >= 500


def _retry_delay(retries_done: int, headers: httpx.Headers | None) -> float:
    retry_after = _retry_after(headers) if headers is not None else None
    if (
        retry_after is not None
        and math.isfinite(retry_after)
        and 0 < retry_after <= _MAX_RETRY_AFTER
    ):
        return retry_after
    delay = min(_INITIAL_RETRY_DELAY * 2.0**retries_done, _MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())  # noqa: S311 - jitter, not a secret


def _error_message(response: httpx.Response) -> str:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_BYTES:
            break
    try:
        error = json.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = body[:200].decode(errors="replace")
    return f"Error code: {response.status_code} - {message}"


def open_completion_stream(client: httpx.Client, body: bytes, max_retries: int) -> CompletionStream:
    """POST a streamed chat completion and return its stream once the server answered 2xx.

    Args:
        client: The endpoint's client (`model_http_client`).
        body: The JSON request body.
        max_retries: Retries after the first attempt on retryable failures.

    Returns:
        The open stream.

    Raises:
        ModelResponseError: The server answered with an error status (after the retries).
        httpx.TimeoutException: The server did not answer in time (after the retries).
        httpx.TransportError: The connection failed (after the retries).
    """
    request = client.build_request(
        "POST",
        "chat/completions",
        content=body,
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    )
    for retries_done in range(max_retries + 1):
        last = retries_done == max_retries
        try:
            response = client.send(request, stream=True)
        except httpx.TransportError:  # timeouts included
            if last:
                raise
            time.sleep(_retry_delay(retries_done, None))
            continue
        if response.is_success:
            return CompletionStream(response)
        try:
            retry = not last and _should_retry(response)
            message = _error_message(response)
        finally:
            response.close()
        if not retry:
            raise ModelResponseError(message, response.status_code)
        time.sleep(_retry_delay(retries_done, response.headers))
    msg = "unreachable: the last attempt returned or raised"
    raise AssertionError(msg)


# -- the chat model -----------------------------------------------------------------------------


@runtime_checkable
class TextStreamingModel(Protocol):
    """A chat model that can stream a reply as plain text pieces (see `LeanChatOpenAI`)."""

    def open_text_stream(self, messages: Sequence[BaseMessage]) -> CompletionStream | None:
        """Start streaming a reply, or return None to have the caller use ``stream()``."""
        ...


def _message_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, Any]] | None:
    # Plain chat turns only; a tool call or tool result is langchain-openai's to convert.
    items: list[dict[str, Any]] = []
    for message in messages:
        role = _ROLES.get(message.type)
        if role is None or getattr(message, "tool_calls", None):
            return None
        item: dict[str, Any] = {"content": message.content, "role": role}
        if message.name:
            item["name"] = message.name
        items.append(item)
    return items


@dataclass(frozen=True)
class _Endpoint:
    base_url: str
    api_key: str
    timeout: float
    max_retries: int
    fixed: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


class LeanChatOpenAI(ChatOpenAI):
    """`ChatOpenAI` that streams chat completions through this module's lean path.

    Everything else (`invoke`, `batch`, tools, structured output) is `ChatOpenAI`'s own.
    """

    def _lean_endpoint(self) -> _Endpoint | None:
        # Worked out per reply (5 us): a copy of the model with other settings must not
        # stream with the old ones. Only what the factory configures is reproduced; a model
        # langchain-openai would send to the Responses API, or whose system role it renames
        # (o-series), or with extra parameters, streams through ChatOpenAI.
        name = self.model_name or ""
        key = self.openai_api_key
        if (
            not isinstance(key, SecretStr | None)  # a key provider: called per request
            or self.model_kwargs
            or self.extra_body
            or self.stop
            or (self.n or 1) != 1
            or self.default_query
            or self.http_client is not None
            or self.openai_proxy
            or self.openai_organization
            or _O_SERIES.match(name)
            or self._use_responses_api({})
        ):
            return None
        fixed: dict[str, Any] = {"model": name, "stream": True}
        if self.max_tokens is not None:
            fixed["max_completion_tokens"] = self.max_tokens
        fixed["stream_options"] = {"include_usage": True}
        if self.temperature is not None:
            fixed["temperature"] = self.temperature
        api_key = key.get_secret_value() if key is not None else ""
        timeout = self.request_timeout
        return _Endpoint(
            # Where the openai SDK would send it.
            base_url=self.openai_api_base
            or os.environ.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1",
            api_key=api_key,
            timeout=float(timeout) if isinstance(timeout, int | float) else 600.0,
            max_retries=self.max_retries if self.max_retries is not None else 2,
            fixed=fixed,
            # A provider's extra headers (ChatOpenAI sends them with every request too).
            headers=dict(self.default_headers or {}),
        )

    def open_text_stream(self, messages: Sequence[BaseMessage]) -> CompletionStream | None:
        """Start streaming a reply to the messages as text pieces.

        Args:
            messages: The conversation, oldest first.

        Returns:
            The open stream, or None when this model or these messages (tool calls, tool
            results) must stream through `stream()`.

        Raises:
            ModelResponseError: The server answered with an error (after the retries).
            httpx.HTTPError: Timeout or connection failure (after the retries).
        """
        endpoint = self._lean_endpoint()
        items = _message_dicts(messages) if endpoint is not None else None
        if endpoint is None or items is None:
            return None
        payload = {**endpoint.fixed, "messages": items}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        client = model_http_client(
            endpoint.base_url, endpoint.api_key, endpoint.timeout, endpoint.headers
        )
        return open_completion_stream(client, body, endpoint.max_retries)
