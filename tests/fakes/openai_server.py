"""A local OpenAI-compatible chat completions server for tests and benchmarks.

It speaks enough of the OpenAI HTTP API for the official `openai` client and `langchain-openai`:

- `POST /v1/chat/completions`: a JSON reply, or with `"stream": true` Server-Sent Events
  (`data: {chunk}` lines, a usage chunk when `stream_options.include_usage` is set, then
  `data: [DONE]`), chunked over HTTP/1.1 keep-alive like the real service.
- `GET /v1/models`: the models it has behaviours for.

Replies are deterministic (see `reply_tokens`); how a model behaves is chosen per model name:

- any name: `normal`, a reply of `tokens` tokens, `token_delay` seconds apart;
- the names `error500`, `error429` and `hang` (unless configured otherwise): that behaviour, so a
  test can select a failure just by naming the model;
- `configure(model, mode=..., tokens=..., ...)` in-process, or `POST /_admin/behaviors` with the
  same fields as JSON from another process.

Every request is recorded (`requests`, `GET /_admin/requests`): body, headers, how many tokens
were sent, and whether the client disconnected before the reply ended (stop/cancel tests).
Failure modes: `error500` and `error429` answer with an OpenAI-style error body; `hang` accepts
the request and sends nothing for `hang_seconds` (bounded, ends early when the client goes away
or the server stops), then closes the connection without a response. `drop_after=N` cuts a
normal stream after N tokens, as an upstream that dies mid-reply.

In-process use (tests)::

    with FakeOpenAIServer() as server:
        server.configure("slow-model", tokens=20, token_delay=0.005)
        client = ChatOpenAI(model="slow-model", base_url=server.base_url, api_key="x")

Out of process (benchmarks)::

    python -m tests.fakes.openai_server --port 8900 --tokens 20 --token-delay 0.005
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import select
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Literal, Self

from tests.waiting import EVENT_TIMEOUT, wait_for

Mode = Literal["normal", "error500", "error429", "hang"]
MODES: tuple[Mode, ...] = ("normal", "error500", "error429", "hang")

DEFAULT_MODEL = "fake-model"
_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog")
# How often a waiting handler (token delay, hang) looks at the client socket and the stop flag.
_POLL_SECONDS = 0.05


def reply_tokens(model: str, count: int) -> list[str]:
    """Return the deterministic reply tokens the server streams for a model.

    The first token names the model, so a test can tell which model of a fallback chain
    answered from the text alone.

    Args:
        model: The requested model name.
        count: Number of tokens (at least 1).

    Returns:
        `count` tokens; joined, they are the reply text.
    """
    return [f"[{model}]"] + [f" {_WORDS[i % len(_WORDS)]}" for i in range(count - 1)]


def reply_text(model: str, count: int) -> str:
    """Return the deterministic reply text of `count` tokens for a model."""
    return "".join(reply_tokens(model, count))


@dataclass(frozen=True)
class Behavior:
    """How the server answers requests for one model.

    Attributes:
        mode: `normal`, `error500`, `error429` or `hang`.
        tokens: Reply length in tokens (capped by the request's max_tokens).
        token_delay: Seconds between streamed tokens.
        first_token_delay: Seconds before the first token (or before the JSON reply).
        hang_seconds: Upper bound of a `hang`; it ends earlier when the client disconnects.
        retry_after: Seconds to send as `Retry-After` with `error429` (None: no header).
        drop_after: In a stream, close the connection abruptly after this many tokens (an
            upstream dying mid-reply); None streams the whole reply.
    """

    mode: Mode = "normal"
    tokens: int = 8
    token_delay: float = 0.0
    first_token_delay: float = 0.0
    hang_seconds: float = 30.0
    retry_after: float | None = None
    drop_after: int | None = None

    def __post_init__(self) -> None:
        """Reject settings the handler could not honour."""
        if self.mode not in MODES:
            msg = f"mode must be one of {MODES}, got {self.mode!r}"
            raise ValueError(msg)
        if self.tokens < 1:
            msg = f"tokens must be at least 1, got {self.tokens}"
            raise ValueError(msg)
        if min(self.token_delay, self.first_token_delay, self.hang_seconds) < 0:
            msg = "delays must not be negative"
            raise ValueError(msg)
        if self.drop_after is not None and self.drop_after < 0:
            msg = f"drop_after must not be negative, got {self.drop_after}"
            raise ValueError(msg)


@dataclass
class RecordedRequest:
    """One request the server received, updated while it is being answered.

    Attributes:
        method: HTTP method.
        path: Request path, query included.
        headers: Request headers, names lower-cased.
        body: The parsed JSON body (None when there was none or it was not JSON).
        received_at: `time.monotonic()` when the request was read.
        status: HTTP status sent (None until the response started, or for a hang).
        tokens_sent: Content tokens written to the client.
        client_disconnected: The client went away before the response was complete.
        finished_at: `time.monotonic()` when the handler was done with it.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    status: int | None = None
    tokens_sent: int = 0
    client_disconnected: bool = False
    finished_at: float | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def model(self) -> str | None:
        """Return the requested model name, if the body named one."""
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        """Return whether the client asked for a streamed reply."""
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def finished(self) -> bool:
        """Return whether the server is done with this request."""
        return self._done.is_set()

    def wait_finished(self, timeout: float = EVENT_TIMEOUT) -> bool:
        """Wait until the server is done with this request.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            Whether the request finished in time.
        """
        return self._done.wait(timeout)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-able data (for `GET /_admin/requests`)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        data.update(model=self.model, stream=self.stream, finished=self.finished)
        return data


class _ClientGoneError(Exception):
    """The client closed the connection while we were still answering."""


class _ServerStoppingError(Exception):
    """The server is stopping: abandon the response."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open hundreds of streams at once; the default backlog of 5 would refuse them.
    request_queue_size = 1024
    owner: FakeOpenAIServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, like the real API
    server: _Server
    # Bounds how long an idle keep-alive connection holds a thread.
    timeout = 30
    # TCP_NODELAY, as real model servers set it: with Nagle's algorithm each small streamed
    # chunk after the first waits for the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            super().log_message(format, *args)

    # -- routing --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(
            {"/v1/models": self._models, "/_admin/requests": self._admin_requests},
        )

    def do_POST(self) -> None:
        self._dispatch(
            {
                "/v1/chat/completions": self._chat_completions,
                "/_admin/behaviors": self._admin_configure,
                "/_admin/reset": self._admin_reset,
            },
        )

    def _dispatch(self, routes: dict[str, Callable[[RecordedRequest], None]]) -> None:
        owner = self.server.owner
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_json(),
            received_at=time.monotonic(),
        )
        if not self.path.startswith("/_admin/"):
            owner._record(record)
        try:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                self._send_error(record, HTTPStatus.NOT_FOUND, f"No route for {self.path}")
            else:
                route(record)
        except (_ClientGoneError, BrokenPipeError, ConnectionResetError):
            record.client_disconnected = True
            self.close_connection = True
        except _ServerStoppingError:
            self.close_connection = True
        finally:
            record.finished_at = time.monotonic()
            record._done.set()

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return None

    # -- OpenAI API -----------------------------------------------------------------------

    def _models(self, record: RecordedRequest) -> None:
        names = sorted({DEFAULT_MODEL, *self.server.owner.behaviors})
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in names]
        self._send_json(record, HTTPStatus.OK, {"object": "list", "data": data})

    def _chat_completions(self, record: RecordedRequest) -> None:
        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._send_error(record, HTTPStatus.BAD_REQUEST, "Body must be JSON with 'messages'")
            return
        model = record.model
        if not model:
            self._send_error(record, HTTPStatus.BAD_REQUEST, "Missing 'model'")
            return
        behavior = self.server.owner.behavior_for(model)
        if behavior.mode == "error500":
            self._send_error(record, HTTPStatus.INTERNAL_SERVER_ERROR, "Simulated server error")
            return
        if behavior.mode == "error429":
            headers = {}
            if behavior.retry_after is not None:
                headers["Retry-After"] = f"{behavior.retry_after:g}"
            self._send_error(
                record, HTTPStatus.TOO_MANY_REQUESTS, "Simulated rate limit", headers=headers
            )
            return
        if behavior.mode == "hang":
            self._wait(behavior.hang_seconds)
            # A dead upstream: no response at all, the connection just closes.
            self.close_connection = True
            return

        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        count = behavior.tokens
        if isinstance(max_tokens, int) and 0 < max_tokens < count:
            count = max_tokens
        tokens = reply_tokens(model, count)
        finish_reason = "length" if count < behavior.tokens else "stop"
        prompt_tokens = _prompt_tokens(body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count,
            "total_tokens": prompt_tokens + count,
        }
        self._wait(behavior.first_token_delay)
        if record.stream:
            self._stream_reply(record, model, tokens, behavior, finish_reason, usage)
        else:
            self._send_json(
                record,
                HTTPStatus.OK,
                {
                    "id": self.server.owner._completion_id(),
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(tokens)},
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage,
                },
            )
            record.tokens_sent = len(tokens)

    def _stream_reply(
        self,
        record: RecordedRequest,
        model: str,
        tokens: list[str],
        behavior: Behavior,
        finish_reason: str,
        usage: dict[str, int],
    ) -> None:
        completion_id = self.server.owner._completion_id()
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            base = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            return base | extra

        def choice(delta: dict[str, Any], reason: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]

        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        record.status = int(HTTPStatus.OK)
        self._send_event(chunk(choice({"role": "assistant", "content": ""})))
        for index, token in enumerate(tokens):
            if index == behavior.drop_after:
                # No finish chunk, no [DONE], no end of the chunked body: the client sees the
                # connection die mid-reply.
                self.close_connection = True
                return
            if index:
                self._wait(behavior.token_delay)
            self._send_event(chunk(choice({"content": token})))
            record.tokens_sent += 1
        self._send_event(chunk(choice({}, finish_reason)))
        options = record.body.get("stream_options") or {}
        if isinstance(options, dict) and options.get("include_usage"):
            self._send_event(chunk([], usage=usage))
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # end of the chunked body

    # -- admin ----------------------------------------------------------------------------

    def _admin_requests(self, record: RecordedRequest) -> None:
        requests = [r.to_dict() for r in self.server.owner.requests]
        self._send_json(record, HTTPStatus.OK, {"requests": requests})

    def _admin_configure(self, record: RecordedRequest) -> None:
        body = dict(record.body) if isinstance(record.body, dict) else {}
        model = body.pop("model", None)
        if not isinstance(model, str) or not model:
            self._send_error(record, HTTPStatus.BAD_REQUEST, "Missing 'model'")
            return
        try:
            behavior = self.server.owner.configure(model, **body)
        except (TypeError, ValueError) as error:
            self._send_error(record, HTTPStatus.BAD_REQUEST, str(error))
            return
        self._send_json(
            record, HTTPStatus.OK, {"model": model, "behavior": dataclasses.asdict(behavior)}
        )

    def _admin_reset(self, record: RecordedRequest) -> None:
        self.server.owner.reset()
        self._send_json(record, HTTPStatus.OK, {"reset": True})

    # -- I/O helpers ----------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        """Wait, but notice a client that goes away or a server that stops."""
        deadline = time.monotonic() + seconds
        stopping = self.server.owner._stopping
        # poll, not select: a benchmark holding 1000+ streams has descriptors past select's
        # FD_SETSIZE limit.
        poller = select.poll()
        poller.register(self.connection, select.POLLIN | select.POLLHUP | select.POLLERR)
        while (remaining := deadline - time.monotonic()) > 0:
            if stopping.is_set():
                raise _ServerStoppingError
            events = poller.poll(min(remaining, _POLL_SECONDS) * 1000)
            # The request body has been read, so a readable socket means end of file (or a
            # reset): the client closed the connection.
            if events and not self._peek():
                raise _ClientGoneError

    def _peek(self) -> bytes:
        try:
            return self.connection.recv(1, socket.MSG_PEEK)
        except (ConnectionResetError, BlockingIOError, TimeoutError):
            return b""

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_event(self, payload: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _send_json(
        self,
        record: RecordedRequest,
        status: HTTPStatus,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        record.status = int(status)
        self.wfile.write(data)

    def _send_error(
        self,
        record: RecordedRequest,
        status: HTTPStatus,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        error_type = (
            "server_error"
            if status >= HTTPStatus.INTERNAL_SERVER_ERROR
            else "invalid_request_error"
        )
        payload = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
        self._send_json(record, status, payload, headers)


def _prompt_tokens(messages: Iterable[Any]) -> int:
    # A stable stand-in for a tokenizer: whitespace-separated words of every text part.
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        parts = [content] if isinstance(content, str) else content or []
        for part in parts:
            text = (
                part
                if isinstance(part, str)
                else part.get("text", "")
                if isinstance(part, dict)
                else ""
            )
            count += len(str(text).split())
    return count


class FakeOpenAIServer:
    """Serve the fake OpenAI API from a background thread on 127.0.0.1.

    Attributes:
        default: Behaviour of models with no behaviour of their own.
        verbose: Log every request to stderr.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default: Behavior | None = None,
        max_recorded: int = 10_000,
        verbose: bool = False,
    ) -> None:
        """Prepare the server; `start()` binds and serves.

        Args:
            host: Address to bind (keep it on loopback).
            port: Port to bind; 0 picks a free one (see `port` after `start()`).
            default: Behaviour of models with no behaviour of their own.
            max_recorded: How many requests to remember (oldest dropped first), so a long
                benchmark does not grow without bound.
            verbose: Log every request to stderr.
        """
        self.default = default or Behavior()
        self.verbose = verbose
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._behaviors: dict[str, Behavior] = {}
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread.

        Returns:
            The server, for chaining.
        """
        if self._httpd is not None:
            msg = "Server already started"
            raise RuntimeError(msg)
        self._stopping.clear()
        httpd = _Server((self._host, self._port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name=f"fake-openai-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end waiting handlers and release the port."""
        if self._httpd is None:
            return
        self._stopping.set()  # ends hangs and delays in the handler threads
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def port(self) -> int:
        """Return the bound port (the requested one before `start()`)."""
        return self._httpd.server_address[1] if self._httpd else self._port

    @property
    def url(self) -> str:
        """Return the server's root URL, e.g. `http://127.0.0.1:40123`."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Return the OpenAI base URL to give clients (`.../v1`)."""
        return f"{self.url}/v1"

    # -- behaviours -----------------------------------------------------------------------

    @property
    def behaviors(self) -> dict[str, Behavior]:
        """Return a copy of the configured behaviours by model name."""
        with self._lock:
            return dict(self._behaviors)

    def configure(self, model: str, **changes: Any) -> Behavior:
        """Set how the server answers one model.

        Args:
            model: The model name.
            **changes: `Behavior` fields to set; the rest come from the default behaviour.

        Returns:
            The model's new behaviour.
        """
        behavior = dataclasses.replace(self.default, **changes)
        with self._lock:
            self._behaviors[model] = behavior
        return behavior

    def behavior_for(self, model: str) -> Behavior:
        """Return how the server answers a model.

        Args:
            model: The model name.

        Returns:
            The configured behaviour, else the one its name selects (`error500`, `error429`,
            `hang`), else the default.
        """
        with self._lock:
            configured = self._behaviors.get(model)
        if configured is not None:
            return configured
        if model in MODES:
            return dataclasses.replace(self.default, mode=model)
        return self.default

    # -- records --------------------------------------------------------------------------

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    def _completion_id(self) -> str:
        return f"chatcmpl-fake-{next(self._ids)}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return the API requests received so far, oldest first (admin calls excluded)."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self, model: str | None = None) -> list[RecordedRequest]:
        """Return the chat completion requests, optionally only those for one model."""
        return [
            r
            for r in self.requests
            if r.path.startswith("/v1/chat/completions") and (model is None or r.model == model)
        ]

    def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = EVENT_TIMEOUT
    ) -> RecordedRequest:
        """Wait until a recorded request matches.

        Args:
            predicate: Test applied to each recorded request.
            timeout: Seconds to wait at most.

        Returns:
            The first matching request.

        Raises:
            AssertionError: If none matched in time.
        """

        def matching() -> RecordedRequest | None:
            return next((record for record in self.requests if predicate(record)), None)

        return wait_for(matching, "matching request", timeout=timeout)

    def reset(self) -> None:
        """Forget recorded requests and configured behaviours."""
        with self._lock:
            self._requests.clear()
            self._behaviors.clear()


def main(argv: list[str] | None = None) -> int:
    """Run the server until interrupted (for benchmarks and manual tests).

    Args:
        argv: Command line arguments (default: `sys.argv[1:]`).

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    parser.add_argument("--tokens", type=int, default=Behavior.tokens, help="tokens per reply")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument(
        "--first-token-delay", type=float, default=0.0, help="seconds before the first token"
    )
    parser.add_argument("--max-recorded", type=int, default=10_000, help="requests to remember")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    default = Behavior(
        tokens=args.tokens, token_delay=args.token_delay, first_token_delay=args.first_token_delay
    )
    server = FakeOpenAIServer(
        args.host, args.port, default=default, max_recorded=args.max_recorded, verbose=args.verbose
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    with server:
        print(f"Fake OpenAI server listening on {server.base_url}", flush=True)
        # Wake up now and then: the signal handler only runs between bytecodes of this thread.
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
