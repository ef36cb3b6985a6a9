#!/usr/bin/env python3
"""Send a bounded stream of real client requests through nginx and count every failure.

Run it while an operation that must not interrupt the service (playbooks/upgrade.yml,
playbooks/rollback.yml) runs; it reports how many requests failed::

    python tests/deploy/rolling_load.py --base-url https://10.231.3.11 --insecure \\
        --stop-file /tmp/stop --ready-file /tmp/ready --report /tmp/report.json

Each worker registers its own user and logs in (setup), writes nothing until every worker has,
then repeats, --pause seconds apart, a cycle of what a user does: GET /health, GET
/api/v1/auth/me, list conversations, and every few cycles creates a conversation and posts a
message whose reply is streamed (Server-Sent Events, read until "done"). A request fails when
it raises (refused, reset, timeout), answers an unexpected status, or a stream ends without
"done" or carries "error".

The run is bounded: it stops when the stop file appears, after --duration seconds, or after
--max-requests requests, whichever comes first. Exit status: 0 when at least one request was
sent and none failed, 1 otherwise, 2 on bad usage. The report (JSON) holds the counts, the
failures (first 50) and the latencies.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from smoke import ApiSession, describe_error, parse_client_args, parse_sse

USER_AGENT = "chatbot-rolling-load/1"
READ_SIZE = 65536
# Every STREAM_EVERY-th cycle creates a conversation and streams a reply to a message in it.
STREAM_EVERY = 3
MAX_REPORTED_FAILURES = 50


class RequestFailedError(Exception):
    """One request did not get the answer a working system gives."""


@dataclass
class Tally:
    """Counts shared by the workers (guarded by a lock)."""

    max_requests: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    slowest: dict[str, float] = field(default_factory=dict)

    def take(self) -> bool:
        """Reserve one request of the budget; False once it is spent."""
        with self.lock:
            return sum(self.sent.values()) < self.max_requests

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        """Count one finished request."""
        with self.lock:
            self.sent[kind] = self.sent.get(kind, 0) + 1
            self.slowest[kind] = max(self.slowest.get(kind, 0.0), seconds)
            if error is not None:
                self.failed[kind] = self.failed.get(kind, 0) + 1
                if len(self.failures) < MAX_REPORTED_FAILURES:
                    self.failures.append(
                        {"kind": kind, "at": time.strftime("%H:%M:%S"), "error": error}
                    )


class Client(ApiSession):
    """One simulated user with its own HTTP session (keep-alive connection to nginx)."""

    def __init__(self, args: argparse.Namespace, tally: Tally) -> None:
        """Prepare a session; nothing is sent yet."""
        super().__init__(
            args.base_url, insecure=args.insecure, timeout=args.timeout, user_agent=USER_AGENT
        )
        self.tally = tally
        suffix = secrets.token_hex(6)
        self.email = f"load-{suffix}@example.com"
        self.password = secrets.token_urlsafe(18)

    def call(
        self,
        method: str,
        path: str,
        expect: int,
        body: dict[str, Any] | None = None,
        *,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request; raise RequestFailedError unless it answers `expect`."""
        return self.send(
            method,
            path,
            expect,
            body,
            failure=RequestFailedError,
            headers={"Accept": "text/event-stream"} if stream else None,
            allow_redirects=False,
            stream=stream,
        )

    def setup(self) -> None:
        """Register this client's user and log in."""
        self.call(
            "POST",
            "/api/v1/auth/register",
            201,
            {"email": self.email, "password": self.password, "display_name": "Load Test"},
        )
        body = self.call(
            "POST", "/api/v1/auth/login", 200, {"email": self.email, "password": self.password}
        ).json()
        self.token = body["access_token"]

    def measured(self, kind: str, func: Any) -> Any:
        """Run one request through func, record its outcome; return its value or None."""
        started = time.monotonic()
        try:
            value = func()
        except (RequestFailedError, ValueError, KeyError) as exc:
            self.tally.record(kind, time.monotonic() - started, str(exc))
            return None
        self.tally.record(kind, time.monotonic() - started, None)
        return value

    def create_conversation(self) -> Any:
        """Create a conversation; return its id."""
        body = self.call("POST", "/api/v1/chat/conversations", 201, {"title": "Load test"})
        return body.json()["conversation"]["id"]

    def stream_reply(self, conversation_id: Any) -> None:
        """Post a message and read its streamed reply to the end."""
        path = f"/api/v1/chat/conversations/{conversation_id}/messages"
        response = self.call(
            "POST", path, 200, {"content": "Load test: answer briefly."}, stream=True
        )
        with response:
            started = time.monotonic()
            chunks = (
                (index, time.monotonic() - started, chunk)
                for index, chunk in enumerate(response.iter_content(READ_SIZE))
            )
            try:
                names = [event.event for event in parse_sse(chunks)]
            except requests.RequestException as exc:
                raise RequestFailedError(
                    f"POST {path}: stream broke: {describe_error(exc)}"
                ) from exc
        if "error" in names or not names or names[-1] != "done":
            raise RequestFailedError(f"POST {path}: stream ended with events {names[-5:]}")

    def cycle(self, number: int) -> None:
        """One round of user actions."""
        self.measured("health", lambda: self.call("GET", "/health", 200))
        self.measured("me", lambda: self.call("GET", "/api/v1/auth/me", 200))
        self.measured("list", lambda: self.call("GET", "/api/v1/chat/conversations", 200))
        if number % STREAM_EVERY == 0:
            conversation_id = self.measured("create", self.create_conversation)
            if conversation_id is not None:
                self.measured("stream", lambda: self.stream_reply(conversation_id))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set the clients up, run them until told to stop; return the report."""
    tally = Tally(max_requests=args.max_requests)
    clients = [Client(args, tally) for _ in range(args.workers)]
    for client in clients:
        try:
            client.setup()
        except (RequestFailedError, ValueError, KeyError) as exc:
            return {"setup_error": str(exc), "sent": 0, "failed": 1}
    stop_file = Path(args.stop_file) if args.stop_file else None
    deadline = time.monotonic() + args.duration
    stopped_by: list[str] = []

    def should_stop() -> bool:
        if stop_file is not None and stop_file.exists():
            stopped_by.append("stop file")
            return True
        if time.monotonic() >= deadline:
            stopped_by.append("duration")
            return True
        if not tally.take():
            stopped_by.append("max requests")
            return True
        return False

    def work(client: Client) -> None:
        number = 0
        while not should_stop():
            client.cycle(number)
            number += 1
            time.sleep(args.pause)

    threads = [threading.Thread(target=work, args=(client,)) for client in clients]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    if args.ready_file:
        Path(args.ready_file).write_text(f"{len(clients)} clients running\n", encoding="utf-8")
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    return {
        "workers": len(clients),
        "seconds": round(seconds, 1),
        "stopped_by": stopped_by[0] if stopped_by else "",
        "sent": sum(tally.sent.values()),
        "failed": sum(tally.failed.values()),
        "sent_by_kind": tally.sent,
        "failed_by_kind": tally.failed,
        "slowest_seconds_by_kind": {k: round(v, 3) for k, v in tally.slowest.items()},
        "failures": tally.failures,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="HTTPS URL of nginx")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed certificate")
    parser.add_argument("--workers", type=int, default=4, help="concurrent users (default 4)")
    parser.add_argument(
        "--duration", type=float, default=120.0, help="maximum seconds to run (default 120)"
    )
    parser.add_argument(
        "--max-requests", type=int, default=20000, help="maximum requests (default 20000)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument(
        "--pause", type=float, default=0.1, help="seconds each user waits between cycles"
    )
    parser.add_argument("--stop-file", help="stop once this file exists")
    parser.add_argument("--ready-file", help="written once every worker has logged in")
    parser.add_argument("--report", help="also write the JSON report to this file")
    args = parse_client_args(parser, argv)
    if args.workers < 1 or args.max_requests < 1 or args.duration <= 0 or args.timeout <= 0:
        parser.error("--workers, --max-requests, --duration and --timeout must be positive")
    if args.pause < 0:
        parser.error("--pause must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the load; print the report; return the exit status."""
    args = parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    print(text, flush=True)
    return 0 if report["sent"] > 0 and report["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
