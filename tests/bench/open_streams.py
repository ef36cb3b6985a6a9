"""Hold many reply streams open on one chat service at once; report their time to first token.

Run on demand, never in the test suite (numbers depend on the machine). Starts what it needs on
this machine: a test model of its own (`serve_holding_model`: the first token at once, then
nothing, so every stream stays open), throwaway PostgreSQL and Redis (unless
``TEST_DATABASE_URL``/``TEST_REDIS_URL`` name running ones), and the chat service under gunicorn
with the deployed configuration (roles/app's template, the chat entry of
playbooks/vars/wiring.yml; ``--threads N`` runs the former gthread model instead). Then it opens
``--streams`` streams, ``--rate`` per second, each a message posted with ``Accept:
text/event-stream`` on a conversation of its own, and keeps every one open until all have their
first token (or failed). It reports the time to first token of the stack and of the model alone
(the same raw client, the same number of open streams), p50 and p99, overall and for the last
tenth opened (while nine tenths were already open), the errors, and the RSS and PSS of the
gunicorn workers (and of the whole service, master included) with all streams open.

Example:
    python tests/bench/open_streams.py --streams 1000 --rate 100

The client is plain sockets and one selector (`open_streams`): a thousand streams cost it one
thread. tests/integration/test_gevent_worker.py uses the same client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    # Run as a script: the checkout's packages (tests, webapp) are imported from it.
    sys.path.insert(0, str(ROOT))

import flask_migrate  # noqa: E402
import jinja2  # noqa: E402
import yaml  # noqa: E402
from flask import Flask  # noqa: E402

from tests.integration.gunicorn_support import start_gunicorn  # noqa: E402
from tests.waiting import answers_health, listening, stop, wait_for  # noqa: E402
from webapp.app import create_app  # noqa: E402
from webapp.settings import Settings  # noqa: E402

TOKEN_EVENT = b"event: token"
# The model's own stream: its first content chunk.
MODEL_TOKEN = b'"content":'


@dataclass
class Stream:
    """One streamed response, read until its first token.

    Attributes:
        request: The raw HTTP/1.1 request.
        sent_at: ``time.perf_counter()`` when the request was sent.
        first_token_at: When the first token arrived (None: not yet, or failed).
        error: Why the stream failed ("" while it did not).
    """

    request: bytes
    marker: bytes = TOKEN_EVENT
    sent_at: float = 0.0
    first_token_at: float | None = None
    error: str = ""
    sock: socket.socket | None = field(default=None, repr=False)
    buffer: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def ttft(self) -> float | None:
        """Seconds from the request to the first token."""
        return None if self.first_token_at is None else self.first_token_at - self.sent_at

    def still_open(self) -> bool:
        """Return whether the server still holds the connection (no end of stream seen)."""
        if self.sock is None:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False


def http_request(host: str, port: int, path: str, body: dict, headers: dict[str, str]) -> bytes:
    """Return an HTTP/1.1 POST request with a JSON body, as raw bytes."""
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    return head.encode() + payload


@contextlib.contextmanager
def open_streams(
    address: tuple[str, int],
    streams: Sequence[Stream],
    *,
    timeout: float,
    rate: float | None = None,
) -> Iterator[Sequence[Stream]]:
    """Send every stream's request and read each response until its first token.

    Yields once every stream has its first token or failed (or ``timeout`` passed, which fails
    the rest), with all connections still open; they are closed on exit.

    Args:
        address: The server.
        streams: The streams to open.
        timeout: Seconds to wait for all first tokens at most.
        rate: Requests sent per second at most (None: all at once).
    """
    selector = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    pending = 0
    try:
        for index, stream in enumerate(streams):
            if rate is not None:
                # Pace the openings (a benchmark setting), reading what arrives meanwhile.
                due = started + index / rate
                while (wait := due - time.perf_counter()) > 0:
                    pending -= _read_ready(selector, wait)
            sock = socket.create_connection(address, timeout=timeout)
            stream.sock = sock
            stream.sent_at = time.perf_counter()
            sock.sendall(stream.request)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, stream)
            pending += 1
        # Bounded by the deadline: each pass waits at most until it.
        while pending and (left := deadline - time.monotonic()) > 0:
            pending -= _read_ready(selector, left)
        for stream in streams:
            if stream.first_token_at is None and not stream.error:
                stream.error = f"no first token within {timeout:g} s"
        yield streams
    finally:
        selector.close()
        for stream in streams:
            if stream.sock is not None:
                stream.sock.close()


def _read_ready(selector: selectors.BaseSelector, wait: float) -> int:
    """Read the sockets that are ready; return how many streams got done (token or error)."""
    done = 0
    for key, _ in selector.select(wait):
        stream: Stream = key.data
        try:
            data = stream.sock.recv(65536)  # type: ignore[union-attr]
        except BlockingIOError:
            continue
        except OSError as error:
            data, stream.error = b"", f"{type(error).__name__}: {error}"
        now = time.perf_counter()
        stream.buffer += data
        if not data:
            stream.error = stream.error or "connection closed before the first token"
        elif not stream.buffer.startswith(b"HTTP/1.1 200") and b"\r\n" in stream.buffer:
            stream.error = bytes(stream.buffer[:300]).decode(errors="replace")
        elif b"event: error" in stream.buffer:
            stream.error = bytes(stream.buffer[-300:]).decode(errors="replace")
        elif stream.marker in stream.buffer:
            stream.first_token_at = now
        else:
            continue
        # Done with this one: keep the connection open, stop reading it.
        selector.unregister(key.fileobj)
        stream.buffer.clear()
        done += 1
    return done


def percentile(values: Sequence[float], q: float) -> float:
    """Return the nearest-rank percentile ``q`` (0..1) of ``values`` in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[index] * 1000


def summary(streams: Sequence[Stream]) -> dict[str, float | int | str]:
    """Return p50/p99 TTFT (ms), overall and of the last tenth, and the error count."""
    ttfts = [s.ttft for s in streams if s.ttft is not None]
    tail = [s.ttft for s in streams[len(streams) * 9 // 10 :] if s.ttft is not None]
    errors = [s.error for s in streams if s.error]
    return {
        "opened": len(streams),
        "first_tokens": len(ttfts),
        "still_open": sum(s.still_open() for s in streams),
        "errors": len(errors),
        "first_error": errors[0][:200] if errors else "",
        "ttft_p50_ms": percentile(ttfts, 0.5),
        "ttft_p99_ms": percentile(ttfts, 0.99),
        "last_tenth_ttft_p50_ms": percentile(tail, 0.5),
        "last_tenth_ttft_p99_ms": percentile(tail, 0.99),
    }


def process_memory_kib(pid: int) -> tuple[int, int]:
    """Return the RSS and PSS of a process in KiB (``/proc/<pid>/smaps_rollup``)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


def worker_pids(master: int) -> list[int]:
    """Return the PIDs of a gunicorn master's children (its workers)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text()
    return sorted(int(pid) for pid in children.split())


def os_threads(pid: int) -> int:
    """Return how many OS threads a process runs."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def deployed_chat_config(port: int, *, graceful_timeout: int = 5, **overrides: object) -> str:
    """Render roles/app's gunicorn configuration for the chat service, as deployed.

    Args:
        port: The port to listen on (127.0.0.1).
        graceful_timeout: Seconds a stopping worker lets its requests finish.
        overrides: Keys of the chat entry of app_services to replace (workers, worker_class).
    """
    wiring = yaml.safe_load((ROOT / "playbooks/vars/wiring.yml").read_text())
    item = next(s for s in wiring["app_services"] if s["name"] == "chat")
    template = ROOT / "roles/app/templates/etc/chatbot/gunicorn.conf.py.j2"
    # Renders Python, not HTML: nothing to escape. trim_blocks as Ansible's template module.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)  # noqa: S701
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in text.splitlines())
    return env.from_string(template.read_text()).render(
        ansible_managed="rendered by tests/bench/open_streams.py",
        item={**item, "port": port, **overrides},
        app_bind_address="127.0.0.1",
        app_gunicorn_timeout=120,
        app_gunicorn_graceful_timeout=graceful_timeout,
        app_forwarded_allow_ips=["127.0.0.1"],
        app_log_level="WARNING",
        app_root=str(ROOT),
    )


FIRST_CHUNK = {
    "id": "chatcmpl-hold",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "open-streams",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}],
}
MODEL_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    + b"data: "
    + json.dumps(FIRST_CHUNK).encode()
    + b"\n\n"
)


def serve_holding_model(port: int) -> None:
    """Serve streamed chat completions that send their first token and then hold, forever.

    One thread and one selector, nothing polled: a thousand held streams cost it nothing while
    they wait (tests/fakes' server runs a thread per stream that polls its client every 50 ms,
    which at a thousand streams took more CPU than the stack under test). Ends with its process.
    """
    selector = selectors.DefaultSelector()
    listener = socket.create_server(("127.0.0.1", port), backlog=4096)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    requests: dict[socket.socket, bytearray] = {}
    while True:
        for key, _ in selector.select():
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    requests[conn] = bytearray()
                    selector.register(conn, selectors.EVENT_READ, conn)
                continue
            conn = key.data
            data = b""
            with contextlib.suppress(BlockingIOError, ConnectionError):
                data = conn.recv(65536)
            if not data:
                selector.unregister(conn)
                conn.close()
                requests.pop(conn, None)
                continue
            buffer = requests[conn]
            buffer += data
            head, sep, body = bytes(buffer).partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            if sep and len(body) >= length:
                # Held: the socket stays registered only to notice the client leaving.
                conn.setblocking(True)
                conn.sendall(MODEL_RESPONSE)
                conn.setblocking(False)
                buffer.clear()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-model", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="streams opened per second")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--warmup", type=int, default=20, help="streams before the measured ones")
    parser.add_argument("--threads", type=int, default=0, help="gthread with this many threads")
    parser.add_argument("--workers", type=int, default=None, help="default: the deployed one")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its result as JSON."""
    # The tests' throwaway servers; imported here only, so that the test suite, which imports
    # this module's client, does not load its own conftest a second time.
    from tests.conftest import _given_or_throwaway, _throwaway_postgres, _throwaway_redis

    args = _parse_args(argv)
    if args.serve_model:
        serve_holding_model(args.serve_model)
    model = "open-streams"
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(
            contextlib.contextmanager(_given_or_throwaway)("TEST_DATABASE_URL", _throwaway_postgres)
        )
        redis_url = stack.enter_context(
            contextlib.contextmanager(_given_or_throwaway)("TEST_REDIS_URL", _throwaway_redis)
        )
        # The test model in a process of its own, so that it does not share this client's GIL.
        model_port = _free_port()
        model_proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-model", str(model_port)],
            cwd=ROOT,
        )
        stack.callback(stop, model_proc)
        wait_for(lambda: listening(model_port), "the test model listening", interval=0.1)
        model_url = f"http://127.0.0.1:{model_port}"
        env = {
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "OPENAI_BASE_URL": f"{model_url}/v1",
            "LLM_MODEL": model,
            "LLM_TIMEOUT": f"{args.timeout * 4:g}",
            "LLM_CACHE_TTL": "0",
            # Every stream may land on one worker: none is refused as busy.
            "LLM_MAX_CONCURRENT_REPLIES": str(args.warmup + args.streams),
            "LLM_DAILY_TOKEN_QUOTA": "100000000",
            "RATE_LIMIT_REQUESTS": "1000000",
            "REGISTER_RATE_LIMIT": "1000 per minute",
            "LOGIN_RATE_LIMIT": "1000 per minute",
        }
        app = create_app("all", Settings.from_env(env))
        with app.app_context():
            flask_migrate.upgrade()
        paths = _prepare(app, args.warmup + args.streams)
        port = _free_port()
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        overrides: dict[str, object] = {} if args.workers is None else {"workers": args.workers}
        if args.threads:
            # The former worker model, for comparison: a thread per open stream.
            overrides.update(worker_class="gthread", threads=args.threads)
        log = directory / "gunicorn.log"
        proc = start_gunicorn(directory, deployed_chat_config(port, **overrides), env, log)
        stack.callback(stop, proc)
        wait_for(
            lambda: answers_health(port),
            "the chat service answering",
            abandon=lambda: None if proc.poll() is None else log.read_text()[-2000:],
            interval=0.1,
        )
        stack_streams = [
            Stream(
                http_request(
                    "127.0.0.1",
                    port,
                    path,
                    {"content": f"stream {index}"},
                    {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
                )
            )
            for index, (token, path) in enumerate(paths)
        ]
        # Warm up: the first reply of a worker builds its bot and model client; these streams
        # (on conversations of their own) are closed before the measured ones open.
        warmup, stack_streams = stack_streams[: args.warmup], stack_streams[args.warmup :]
        with open_streams(("127.0.0.1", port), warmup, timeout=args.timeout) as done:
            result_warmup = summary(done)
        if result_warmup["errors"]:
            print(json.dumps({"warmup": result_warmup}, indent=2))
            return 1
        with open_streams(
            ("127.0.0.1", port), stack_streams, timeout=args.timeout, rate=args.rate
        ) as done:
            result = {"stack": summary(done)}
            workers = worker_pids(proc.pid)
            memory = [process_memory_kib(pid) for pid in workers]
            result["workers"] = {
                "count": len(workers),
                "rss_mib": [round(rss / 1024, 1) for rss, _ in memory],
                "pss_mib": [round(pss / 1024, 1) for _, pss in memory],
                "os_threads": [os_threads(pid) for pid in workers],
                "service_pss_mib": round(
                    sum(pss for _, pss in [*memory, process_memory_kib(proc.pid)]) / 1024, 1
                ),
            }
        model_body = {
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        }
        model_streams = [
            Stream(
                http_request("127.0.0.1", model_port, "/v1/chat/completions", model_body, {}),
                marker=MODEL_TOKEN,
            )
            for _ in range(args.streams)
        ]
        # The stack's streams are closed now; the model's own, at the same pace.
        with open_streams(
            ("127.0.0.1", model_port), model_streams, timeout=args.timeout, rate=args.rate
        ) as done:
            result["model"] = summary(done)
        result["overhead_ms"] = {
            key: round(result["stack"][key] - result["model"][key], 1)
            for key in result["stack"]
            if key.endswith("_ms")
        }
        print(json.dumps(result, indent=2))
    return 0 if result["stack"]["errors"] == 0 else 1


def _prepare(app: Flask, count: int) -> list[tuple[str, str]]:
    """Create users (a few) and one conversation per stream; return (token, messages path)."""
    client = app.test_client()
    password = secrets.token_urlsafe(18)
    tokens = []
    for _ in range(max(1, count // 100)):
        body = {"email": f"open-{secrets.token_hex(6)}@example.com", "password": password}
        assert client.post("/api/v1/auth/register", json=body).status_code == 201
        tokens.append(client.post("/api/v1/auth/login", json=body).get_json()["access_token"])
    paths = []
    for index in range(count):
        token = tokens[index % len(tokens)]
        reply = client.post(
            "/api/v1/chat/conversations",
            json={"title": f"open {index}"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 201, reply.get_json()
        conversation = reply.get_json()["conversation"]["id"]
        paths.append((token, f"/api/v1/chat/conversations/{conversation}/messages"))
    return paths


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
