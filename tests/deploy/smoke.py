#!/usr/bin/env python3
"""Check a deployed chat bot system end to end, through nginx over HTTPS.

Usage (from the controller)::

    python tests/deploy/smoke.py --base-url https://10.231.0.11 --insecure \\
        [--admin-email admin@example.com --admin-password ...] [--account-file PATH]

The admin password may also come from the environment variable CHATBOT_SMOKE_ADMIN_PASSWORD
(kept out of process listings and Ansible logs).

Each run registers a fresh random user, unless --account-file names where to keep one: the first
run registers it and saves its email and generated password there (JSON, mode 0600); later runs
log in with it and register nothing, so the check can run any number of times although
registration is limited per client address (10 per hour, and every client on a lab bridge has
the same address). When the saved account is not on the deployment (the host was re-created),
the login check registers it again.

Checks, in order; each prints one line, and a failed check skips the checks that need it:

    http-redirect          plain HTTP answers 301/308 with an https:// Location
    register               a fresh random user can register (201); skipped when the account
                           saved in --account-file is reused
    login                  and log in (200, bearer token)
    me                     GET /api/v1/auth/me names that user, role "user"
    create-conversation    POST /api/v1/chat/conversations (201)
    stream-reply           POST a message with Accept: text/event-stream and read the events as
                           they arrive: "message", then more than one "token", then "done"; the
                           first token must arrive in an earlier network read than "done"
                           (a buffering proxy delivers everything at once)
    stored-reply           the conversation holds the user message and an assistant message equal
                           to the streamed tokens joined
    api-key-create         the user creates a personal API key (POST /api/v1/auth/api-keys, 201,
                           shown once: cbk_...)
    openai-models          the official openai SDK lists the models at /v1 with that key (through
                           nginx, over HTTPS); the chat API's default model is among them
    openai-stream          and streams a completion of the default model with the SDK: content in
                           more than one chunk, usage in the last (stream_options.include_usage)
    openai-unbuffered      the same request read off the wire: the first content chunk arrives in
                           an earlier network read than "data: [DONE]" (nginx does not buffer /v1)
    api-key-revoke         the user revokes the key (DELETE /api/v1/auth/api-keys/<id>, 204)
    openai-revoked-key     and the SDK's next request with it raises openai.AuthenticationError
    admin-anonymous        GET /api/v1/admin/stats without a token is 401
    admin-forbidden        and with the user's token 403
    admin-login            (with admin credentials) the admin logs in, role "admin"
    admin-stats            and gets numeric counts (200)
    admin-webhooks         and lists webhooks (200), while a webhook to 127.0.0.1 is refused
                           (400 naming url: the address guard is live)
    api-docs               each API (auth, chat, admin, and /v1) serves an OpenAPI 3 document and
                           an HTML docs page

Exit status: 0 when every check passed, 1 when one failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
import requests
import urllib3

ADMIN_PASSWORD_ENV = "CHATBOT_SMOKE_ADMIN_PASSWORD"
USER_AGENT = "chatbot-smoke/1"
READ_SIZE = 65536


class CheckFailedError(Exception):
    """A check found the system misbehaving; the message says how."""


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event, with when and in which network read it was completed."""

    event: str
    data: str
    id: str | None
    read_index: int
    seconds: float


def parse_sse(chunks: Iterable[tuple[int, float, bytes]]) -> Iterator[SseEvent]:
    """Parse a text/event-stream body incrementally.

    Args:
        chunks: (read index, seconds since the request, bytes) for each network read.

    Yields:
        Every complete event, as soon as the read that completes it has been parsed.
    """
    pending = b""
    event, data, event_id = "", [], None
    for read_index, seconds, chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.removesuffix(b"\r").decode("utf-8")
            if not line:
                if data:
                    yield SseEvent(
                        event or "message", "\n".join(data), event_id, read_index, seconds
                    )
                event, data, event_id = "", [], None
                continue
            if line.startswith(":"):
                continue  # comment, e.g. a keep-alive
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value


def describe_error(exc: BaseException) -> str:
    """Say in a few words why a request failed (refused, timed out, TLS, DNS...)."""
    reason = _root_cause(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS handshake failed ({reason}); --insecure accepts a self-signed certificate"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect ({reason})"
    return reason


def _root_cause(exc: BaseException) -> str:
    """Return the operating system's reason from an exception chain, else the exception text."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and isinstance(current.strerror, str):
            return current.strerror
        linked = (getattr(current, "reason", None), current.__cause__, current.__context__)
        pending += [e for e in (*linked, *current.args) if isinstance(e, BaseException)]
    return str(exc)


def summarize(response: requests.Response) -> str:
    """Describe a response body briefly: the API error shape if present, else its start."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE)
        if title:
            return f"HTML page {title.group(1)!r}"
        return text[:160] or "(empty body)"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        field = f" (field {error['field']})" if error.get("field") else ""
        return f"{error.get('code')}: {error.get('message')}{field}"
    return json.dumps(body)[:160]


RATE_LIMIT_ATTEMPTS = 6
"""Times one check's request is sent at most while nginx's rate limit answers 429."""
_RETRY_AFTER_MAX = 5


def _short_retry_after(response: requests.Response) -> int | None:
    """Return the seconds a 429 asks to wait, if it is a short wait (nginx's request rate
    limit), else None (not a 429, or a long wait such as the daily quota's)."""
    if response.status_code != 429:
        return None
    try:
        wait = int(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return max(wait, 1) if wait <= _RETRY_AFTER_MAX else None


class ApiSession:
    """A session with one deployment's JSON API (restore_check's and rolling_load's clients)."""

    def __init__(self, base_url: str, *, insecure: bool, timeout: float, user_agent: str) -> None:
        """Prepare a session; nothing is sent yet."""
        self.base_url = base_url.rstrip("/")
        self.verify = not insecure
        self.timeout = timeout
        self.token = ""
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})

    def send(
        self,
        method: str,
        path: str,
        expect: int,
        body: Any = None,
        *,
        failure: type[Exception],
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> requests.Response:
        """Send one request, with the token once there is one; raise ``failure`` unless it
        answers ``expect``. ``options`` go to requests (``stream``, ``allow_redirects``)."""
        sent = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=body,
                headers={**sent, **(headers or {})},
                timeout=self.timeout,
                verify=self.verify,
                **options,
            )
        except requests.RequestException as exc:
            raise failure(f"{method} {path}: {describe_error(exc)}") from exc
        if response.status_code != expect:
            summary = summarize(response)
            response.close()
            raise failure(
                f"{method} {path}: expected {expect}, got {response.status_code}: {summary}"
            )
        return response


class Runner:
    """Run named checks in order and print one line per check."""

    def __init__(self) -> None:
        """Start with no results."""
        self.results: dict[str, Any] = {}
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}

    def check(self, name: str, func: Callable[[], tuple[str, Any]], *needs: str) -> None:
        """Run func unless a check it needs did not pass; record and print the outcome.

        Args:
            name: the check's name, printed and usable in later checks' needs.
            func: returns (detail to print, value for later checks); raises
                CheckFailedError with the reason when the system misbehaves.
            needs: names of checks that must have passed first.
        """
        missing = [need for need in needs if need not in self.results]
        if missing:
            self._report("SKIP", name, f"needs {', '.join(missing)}")
            return
        started = time.monotonic()
        try:
            detail, value = func()
        except CheckFailedError as exc:
            self._report("FAIL", name, str(exc))
            return
        self.results[name] = value
        self._report("PASS", name, f"{detail} ({(time.monotonic() - started) * 1000:.0f} ms)")

    def skip(self, name: str, reason: str) -> None:
        """Report a check that this run does not perform."""
        self._report("SKIP", name, reason)

    def _report(self, status: str, name: str, detail: str) -> None:
        self.counts[status] += 1
        print(f"{status} {name:<20} {detail}", flush=True)


class Smoke:
    """The end-to-end checks against one deployment."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Prepare an HTTP session for the deployment named in the arguments."""
        self.base_url = args.base_url.rstrip("/")
        self.http_url = (args.http_url or _http_url(self.base_url)).rstrip("/")
        self.timeout = args.timeout
        self.stream_timeout = args.stream_timeout
        self.admin_email = args.admin_email
        self.admin_password = args.admin_password
        # Passed with every request: a session-wide verify=False loses against
        # $REQUESTS_CA_BUNDLE, which requests merges in per request.
        self.verify = not args.insecure
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        suffix = secrets.token_hex(6)
        self.account_file: Path | None = args.account_file
        saved = load_account(args.account_file) if args.account_file else None
        self.reused = saved is not None
        if saved is None:
            self.email = f"smoke-{suffix}@example.com"
            self.password = secrets.token_urlsafe(18)
        else:
            self.email, self.password = saved
        self.message = f"Smoke test {suffix}: please answer in a few words."

    def run(self) -> int:
        """Run every check; return the exit status."""
        runner = Runner()
        runner.check("http-redirect", self.http_redirect)
        if self.reused:
            runner.skip(
                "register",
                f"reusing {self.email}, saved in {self.account_file} by an earlier run",
            )
            runner.check("login", self.login_saved_user)
        else:
            runner.check("register", self.register)
            runner.check("login", lambda: self.login(self.email, self.password, "user"), "register")
        user_token = runner.results.get("login")
        runner.check("me", lambda: self.me(user_token), "login")
        runner.check("create-conversation", lambda: self.create_conversation(user_token), "login")
        conversation_id = runner.results.get("create-conversation")
        runner.check(
            "stream-reply",
            lambda: self.stream_reply(user_token, conversation_id),
            "create-conversation",
        )
        runner.check(
            "stored-reply",
            lambda: self.stored_reply(user_token, conversation_id, runner.results["stream-reply"]),
            "stream-reply",
        )
        self.run_openai_checks(runner, user_token)
        runner.check("admin-anonymous", lambda: self.admin_stats(None, 401, "unauthorized"))
        runner.check(
            "admin-forbidden", lambda: self.admin_stats(user_token, 403, "forbidden"), "login"
        )
        if self.admin_email and self.admin_password:
            runner.check(
                "admin-login", lambda: self.login(self.admin_email, self.admin_password, "admin")
            )
            runner.check(
                "admin-stats",
                lambda: self.admin_stats(runner.results["admin-login"], 200, None),
                "admin-login",
            )
            runner.check(
                "admin-webhooks",
                lambda: self.admin_webhooks(runner.results["admin-login"]),
                "admin-login",
            )
        else:
            for name in ("admin-login", "admin-stats", "admin-webhooks"):
                runner.skip(name, "no --admin-email/--admin-password given")
        runner.check("api-docs", self.api_docs)
        runner.check("metrics-hidden", self.metrics_hidden)
        # Logging out must revoke the token in every service at once, not just in auth.
        runner.check("logout", lambda: self.logout(user_token), "login")
        for service, path in REVOCATION_PROBES:
            runner.check(
                f"revoked-{service}",
                lambda path=path: self.rejected(user_token, path),
                "logout",
            )
        if "admin-login" in runner.results:
            admin_token = runner.results["admin-login"]
            runner.check("admin-logout", lambda: self.logout(admin_token), "admin-login")
            runner.check(
                "revoked-admin-token",
                lambda: self.rejected(admin_token, "/api/v1/admin/stats"),
                "admin-logout",
            )
        counts = runner.counts
        print(
            f"smoke: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"
            f" against {self.base_url}",
            flush=True,
        )
        return 1 if counts["FAIL"] else 0

    def run_openai_checks(self, runner: Runner, user_token: str | None) -> None:
        """Drive the OpenAI-compatible API (/v1) with a personal API key of the user; revoke it.

        The key is revoked whether or not the SDK's checks passed (it needs only the key).
        """
        runner.check("api-key-create", lambda: self.create_api_key(user_token), "login")
        created = runner.results.get("api-key-create") or {}
        runner.check(
            "openai-models",
            lambda: self.openai_models(created["key"], user_token),
            "api-key-create",
        )
        model = runner.results.get("openai-models")
        runner.check(
            "openai-stream",
            lambda: self.openai_stream(created["key"], model),
            "openai-models",
        )
        runner.check(
            "openai-unbuffered",
            lambda: self.openai_unbuffered(created["key"], model),
            "openai-models",
        )
        runner.check(
            "api-key-revoke",
            lambda: self.revoke_api_key(user_token, created["id"]),
            "api-key-create",
        )
        runner.check(
            "openai-revoked-key", lambda: self.openai_revoked(created["key"]), "api-key-revoke"
        )

    # --- HTTP helpers -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        expect: tuple[int, ...],
        *,
        token: str | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request; fail the check unless the status is one of expect."""
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        timeout = (self.timeout, self.stream_timeout if stream else self.timeout)
        for attempt in range(1, RATE_LIMIT_ATTEMPTS + 1):
            try:
                response = self.session.request(
                    method,
                    url,
                    json=body,
                    headers=all_headers,
                    timeout=timeout,
                    verify=self.verify,
                    allow_redirects=False,
                    stream=stream,
                )
            except requests.RequestException as exc:
                raise CheckFailedError(f"{method} {url}: {describe_error(exc)}") from exc
            wait = _short_retry_after(response)
            if 429 in expect or wait is None or attempt == RATE_LIMIT_ATTEMPTS:
                break
            # nginx's per-address limit (10 r/s, burst 20) refused the request before the app
            # saw it: the smoke test sends more than that in its first second. Wait as told,
            # like any well-behaved client, and send it again.
            response.close()
            time.sleep(wait)
        if response.status_code not in expect:
            wanted = " or ".join(str(code) for code in expect)
            summary = summarize(response)
            response.close()
            raise CheckFailedError(
                f"{method} {url}: expected {wanted}, got {response.status_code}: {summary}"
            )
        return response

    def api(self, method: str, path: str, expect: tuple[int, ...], **kwargs: Any) -> Any:
        """Call the JSON API; return the decoded body."""
        response = self.request(method, self.base_url + path, expect, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise CheckFailedError(
                f"{method} {path}: body is not JSON: {summarize(response)}"
            ) from exc

    # --- the checks ---------------------------------------------------------------------------

    def http_redirect(self) -> tuple[str, None]:
        """Plain HTTP must redirect permanently to HTTPS."""
        response = self.request("GET", self.http_url + "/", (301, 308))
        location = response.headers.get("Location", "")
        if not location.startswith("https://"):
            raise CheckFailedError(
                f"{response.status_code} to {location or '(no Location)'}, not https://"
            )
        return f"{response.status_code} -> {location}", None

    def register(self) -> tuple[str, None]:
        """Register a fresh user with a random email and password."""
        body = self.api(
            "POST",
            "/api/v1/auth/register",
            (201,),
            body={"email": self.email, "password": self.password, "display_name": "Smoke Test"},
        )
        email = _get(body, "user", "email")
        if email != self.email:
            raise CheckFailedError(f"registered user has email {email!r}, sent {self.email!r}")
        if self.account_file is None:
            return self.email, None
        save_account(self.account_file, self.email, self.password)
        return f"{self.email} (saved in {self.account_file} for later runs)", None

    def login(self, email: str, password: str, role: str) -> tuple[str, str]:
        """Log in; the user must have the expected role. Return the access token."""
        body = self.api(
            "POST", "/api/v1/auth/login", (200,), body={"email": email, "password": password}
        )
        return self._login_token(body, email, role)

    def login_saved_user(self) -> tuple[str, str]:
        """Log in as the saved user; register it first when this deployment does not know it."""
        credentials = {"email": self.email, "password": self.password}
        response = self.request(
            "POST", self.base_url + "/api/v1/auth/login", (200, 401), body=credentials
        )
        if response.status_code == 200:
            return self._login_token(response.json(), self.email, "user")
        # A re-created host has a new database: the saved account is gone; register it again.
        # (Taken instead means its password was changed: only a new account helps.)
        try:
            self.register()
        except CheckFailedError as exc:
            raise CheckFailedError(
                f"the saved account's login was refused, and registering it again failed: {exc};"
                f" delete {self.account_file} to start with a new account"
            ) from exc
        detail, token = self.login(self.email, self.password, "user")
        return f"{detail}; registered first: the saved account was not on this deployment", token

    def _login_token(self, body: Any, email: str, role: str) -> tuple[str, str]:
        token = _get(body, "access_token")
        if not isinstance(token, str) or not token:
            raise CheckFailedError("login answered without an access_token")
        if body.get("token_type") != "Bearer":
            raise CheckFailedError(f"token_type is {body.get('token_type')!r}, not 'Bearer'")
        actual = _get(body, "user", "role")
        if actual != role:
            raise CheckFailedError(f"{email} has role {actual!r}, expected {role!r}")
        return f"{email} ({role}), token expires in {body.get('expires_in')} s", token

    def me(self, token: str) -> tuple[str, None]:
        """GET /auth/me must name the logged-in user."""
        user = _get(self.api("GET", "/api/v1/auth/me", (200,), token=token), "user")
        if user.get("email") != self.email or user.get("role") != "user":
            raise CheckFailedError(f"/auth/me returned {user!r}")
        return f"user id {user.get('id')}", None

    def create_conversation(self, token: str) -> tuple[str, Any]:
        """Create a conversation; return its id."""
        body = self.api(
            "POST", "/api/v1/chat/conversations", (201,), token=token, body={"title": "Smoke test"}
        )
        conversation_id = _get(body, "conversation", "id")
        return f"conversation {conversation_id}", conversation_id

    def stream_reply(self, token: str, conversation_id: Any) -> tuple[str, dict[str, Any]]:
        """Post a message and read the reply as server-sent events, as they arrive."""
        path = f"/api/v1/chat/conversations/{conversation_id}/messages"
        started = time.monotonic()
        response = self.request(
            "POST",
            self.base_url + path,
            (200, 201),
            token=token,
            body={"content": self.message},
            headers={"Accept": "text/event-stream"},
            stream=True,
        )
        with response:
            content_type = response.headers.get("Content-Type", "")
            if not content_type.startswith("text/event-stream"):
                raise CheckFailedError(f"Content-Type is {content_type!r}, not text/event-stream")
            events = self._read_events(response, started)
        return self._check_events(events)

    def _read_events(self, response: requests.Response, started: float) -> list[SseEvent]:
        deadline = started + self.stream_timeout

        def chunks() -> Iterator[tuple[int, float, bytes]]:
            index = 0
            while True:
                try:
                    chunk = response.raw.read1(READ_SIZE, decode_content=True)
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise CheckFailedError(
                        f"reading the event stream: {describe_error(exc)}"
                    ) from exc
                if not chunk:
                    return
                yield index, time.monotonic() - started, chunk
                index += 1

        events = []
        for event in parse_sse(chunks()):
            events.append(event)
            if event.event in ("done", "error"):
                break
            if time.monotonic() > deadline:
                raise CheckFailedError(f"no 'done' event within {self.stream_timeout:.0f} s")
        return events

    def _check_events(self, events: list[SseEvent]) -> tuple[str, dict[str, Any]]:
        names = [event.event for event in events]
        errors = [event for event in events if event.event == "error"]
        if errors:
            raise CheckFailedError(f"the stream sent an error event: {errors[0].data}")
        if not events or events[-1].event != "done":
            raise CheckFailedError(f"the stream ended without a 'done' event (got {names})")
        if names[0] != "message":
            raise CheckFailedError(f"first event is {names[0]!r}, not 'message'")
        user_message = _json(events[0])
        if user_message.get("content") != self.message or user_message.get("role") != "user":
            raise CheckFailedError(
                f"'message' event is not the message sent: {events[0].data[:160]}"
            )
        tokens = [event for event in events if event.event == "token"]
        if len(tokens) < 2:
            raise CheckFailedError(
                f"{len(tokens)} 'token' event(s); a streamed reply has more than one"
            )
        unexpected = sorted(set(names) - {"message", "token", "done"})
        if unexpected:
            raise CheckFailedError(f"unexpected events {unexpected}")
        without_id = [event.event for event in events if not event.id]
        if without_id:
            raise CheckFailedError(f"events without an id: {without_id}")
        text = "".join(_get(_json(event), "text") for event in tokens)
        done, first = events[-1], tokens[0]
        reply = _json(done)
        if reply.get("id") is None:
            raise CheckFailedError(f"'done' carries no stored message id: {done.data[:160]}")
        if reply.get("role") != "assistant" or reply.get("content") != text:
            raise CheckFailedError(
                f"'done' carries {reply.get('role')!r} content {reply.get('content')!r}, "
                f"the tokens joined are {text!r}"
            )
        timing = (
            f"first token at {first.seconds * 1000:.0f} ms, done at {done.seconds * 1000:.0f} ms"
        )
        if first.read_index >= done.read_index:
            raise CheckFailedError(
                f"not streamed: the first token and 'done' came in the same network read"
                f" ({timing}); something buffers the response (nginx proxy_buffering, gzip?)"
            )
        reads = done.read_index + 1
        return f"{len(tokens)} tokens in {reads} reads, {timing}", {"text": text, "reply": reply}

    def stored_reply(
        self, token: str, conversation_id: Any, streamed: dict[str, Any]
    ) -> tuple[str, None]:
        """The stored conversation must hold the message sent and the reply streamed."""
        path = f"/api/v1/chat/conversations/{conversation_id}"
        messages = _get(self.api("GET", path, (200,), token=token), "conversation", "messages")
        if not any(m.get("role") == "user" and m.get("content") == self.message for m in messages):
            raise CheckFailedError("the message sent is not stored in the conversation")
        reply_id = streamed["reply"].get("id")
        assistant = [m for m in messages if m.get("role") == "assistant"]
        stored = next((m for m in assistant if m.get("id") == reply_id), None)
        if stored is None:
            raise CheckFailedError(f"no stored assistant message with id {reply_id!r}")
        if stored.get("content") != streamed["text"]:
            raise CheckFailedError(
                f"stored reply {stored.get('content')!r} differs from the streamed tokens "
                f"{streamed['text']!r}"
            )
        return f"{len(messages)} messages, reply {reply_id} matches the tokens", None

    # --- the OpenAI-compatible API (/v1), with the official SDK ---------------------------------

    def openai_client(self, key: str) -> openai.OpenAI:
        """Return the official SDK's client of this deployment's /v1 with an API key.

        No retries: each request is sent once, so a failure is reported as it happened.
        """
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1",
            api_key=key,
            max_retries=0,
            timeout=self.stream_timeout,
            http_client=openai.DefaultHttpxClient(verify=self.verify),
            default_headers={"User-Agent": USER_AGENT},
        )

    def create_api_key(self, token: str) -> tuple[str, dict[str, Any]]:
        """Create a personal API key; it is in the answer once, in full."""
        body = self.api(
            "POST", "/api/v1/auth/api-keys", (201,), token=token, body={"name": "smoke test"}
        )
        key = _get(body, "key")
        listed = _get(body, "api_key")
        if not isinstance(key, str) or not key.startswith("cbk_"):
            raise CheckFailedError("the created key does not start with cbk_")
        prefix = listed.get("prefix")
        if not isinstance(prefix, str) or not prefix or not key.startswith(prefix):
            raise CheckFailedError(f"the key's listed prefix {prefix!r} is not its start")
        # Only the prefix is printed: the key itself is a secret, even a short-lived one.
        return f"key {prefix}... (id {listed.get('id')})", {
            "id": _get(listed, "id"),
            "key": key,
        }

    def revoke_api_key(self, token: str, key_id: Any) -> tuple[str, None]:
        """Revoke the key: it leaves the user's list of keys."""
        self.request(
            "DELETE", f"{self.base_url}/api/v1/auth/api-keys/{key_id}", (204,), token=token
        )
        listed = _get(self.api("GET", "/api/v1/auth/api-keys", (200,), token=token), "api_keys")
        if any(item.get("id") == key_id for item in listed):
            raise CheckFailedError(f"key {key_id} is still listed after DELETE")
        return f"key {key_id} revoked", None

    def openai_models(self, key: str, token: str) -> tuple[str, str]:
        """List the models with the SDK; return the chat API's default model, which must be one."""
        try:
            models = [model.id for model in self.openai_client(key).models.list()]
        except openai.OpenAIError as exc:
            raise CheckFailedError(f"GET /v1/models: {_describe_openai_error(exc)}") from exc
        default = _get(self.api("GET", "/api/v1/chat/models", (200,), token=token), "default")
        if default not in models:
            raise CheckFailedError(f"the default model {default!r} is not in /v1/models {models}")
        return f"{len(models)} model(s): {', '.join(models)}; default {default}", default

    def openai_stream(self, key: str, model: str) -> tuple[str, None]:
        """Stream one completion with the SDK: content in several chunks, usage at the end."""
        chunks, contents, usage, answered_by = 0, [], None, set()
        try:
            stream = self.openai_client(key).chat.completions.create(
                model=model,
                # Not the chat check's message: the reply cache would answer it at once.
                messages=[{"role": "user", "content": f"{self.message} (OpenAI SDK)"}],
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=64,
            )
            for chunk in stream:
                chunks += 1
                answered_by.add(chunk.model)
                for choice in chunk.choices:
                    if choice.delta.content:
                        contents.append(choice.delta.content)
                if chunk.usage is not None:
                    usage = chunk.usage
        except openai.OpenAIError as exc:
            raise CheckFailedError(
                f"POST /v1/chat/completions (stream): {_describe_openai_error(exc)}"
            ) from exc
        if len(contents) < 2:
            raise CheckFailedError(
                f"{len(contents)} chunk(s) with content of {chunks}; a streamed reply has more"
            )
        if usage is None or not usage.completion_tokens:
            raise CheckFailedError(f"no usage with completion tokens in the last chunk: {usage}")
        return (
            f"{len(contents)} content chunks of {chunks}, {usage.completion_tokens} completion"
            f" tokens, answered by {', '.join(sorted(answered_by))}"
        ), None

    def openai_unbuffered(self, key: str, model: str) -> tuple[str, None]:
        """Read a streamed completion off the wire: nginx must pass each chunk on at once."""
        started = time.monotonic()
        response = self.request(
            "POST",
            f"{self.base_url}/v1/chat/completions",
            (200,),
            body={
                "model": model,
                "messages": [{"role": "user", "content": f"{self.message} (off the wire)"}],
                "stream": True,
                "max_tokens": 64,
            },
            headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
            stream=True,
        )
        with response:
            content_type = response.headers.get("Content-Type", "")
            if not content_type.startswith("text/event-stream"):
                raise CheckFailedError(f"Content-Type is {content_type!r}, not text/event-stream")
            events = self._read_events(response, started)
        done = next((event for event in events if event.data == "[DONE]"), None)
        if done is None:
            raise CheckFailedError(f"the stream ended without data: [DONE] ({len(events)} events)")
        first = next(
            (
                event
                for event in events
                if event.data != "[DONE]"
                and any(
                    (choice.get("delta") or {}).get("content")
                    for choice in _json(event).get("choices", [])
                )
            ),
            None,
        )
        if first is None:
            raise CheckFailedError("no chunk with content before data: [DONE]")
        timing = (
            f"first content at {first.seconds * 1000:.0f} ms,"
            f" [DONE] at {done.seconds * 1000:.0f} ms"
        )
        if first.read_index >= done.read_index:
            raise CheckFailedError(
                f"not streamed: the first content and [DONE] came in the same network read"
                f" ({timing}); something buffers /v1 (nginx proxy_buffering?)"
            )
        return f"{len(events)} events in {done.read_index + 1} reads, {timing}", None

    def openai_revoked(self, key: str) -> tuple[str, None]:
        """The revoked key must be refused at once: the SDK raises AuthenticationError (401)."""
        try:
            self.openai_client(key).models.list()
        except openai.AuthenticationError as exc:
            return f"401 {_describe_openai_error(exc)}", None
        except openai.OpenAIError as exc:
            raise CheckFailedError(
                f"expected AuthenticationError, got {_describe_openai_error(exc)}"
            ) from exc
        raise CheckFailedError("GET /v1/models with the revoked key succeeded")

    def api_docs(self) -> tuple[str, None]:
        """Every API publishes a valid-looking OpenAPI 3 document and a docs page."""
        versions = []
        for prefix in API_PREFIXES:
            document = self.api("GET", f"{prefix}/openapi.json", (200,))
            version = str(document.get("openapi", ""))
            if not version.startswith("3.") or not document.get("paths"):
                raise CheckFailedError(f"{prefix}: not an OpenAPI 3 document (openapi={version!r})")
            page = self.request("GET", f"{self.base_url}{prefix}/docs", (200,))
            if "text/html" not in page.headers.get("Content-Type", ""):
                raise CheckFailedError(f"{prefix}: docs page is {page.headers.get('Content-Type')}")
            versions.append(f"{prefix} {version}")
        return ", ".join(versions), None

    def metrics_hidden(self) -> tuple[str, None]:
        """Prometheus metrics are for the private network: nginx must not serve them."""
        self.request("GET", self.base_url + "/metrics", (404,))
        return "404 through nginx", None

    def logout(self, token: str) -> tuple[str, None]:
        """Log out with the access token: its session is revoked."""
        response = self.request(
            "POST", self.base_url + "/api/v1/auth/logout", (200, 204), token=token
        )
        return f"{response.status_code}", None

    def rejected(self, token: str, path: str) -> tuple[str, None]:
        """A revoked token must get 401 (not 403 or 200) from the service behind path."""
        body = self.api("GET", path, (401,), token=token)
        return f"401 {_get(body, 'error', 'code')} from {path}", None

    def admin_stats(self, token: str | None, status: int, code: str | None) -> tuple[str, Any]:
        """GET /admin/stats: status 401/403 with the error code, or 200 with numeric counts."""
        response = self.request(
            "GET", self.base_url + "/api/v1/admin/stats", (status,), token=token
        )
        try:
            body = response.json()
        except ValueError as exc:
            raise CheckFailedError(f"body is not JSON: {summarize(response)}") from exc
        if code is not None:
            actual = _get(body, "error", "code")
            if actual != code:
                raise CheckFailedError(f"{status} with error code {actual!r}, expected {code!r}")
            return f"{status} {code}", None
        counts = {key: body.get(key) for key in ("users", "conversations", "messages")}
        bad = [
            k for k, v in counts.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0
        ]
        if bad:
            raise CheckFailedError(f"counts not non-negative integers: {body!r}")
        if counts["users"] < 1 or counts["messages"] < 2:
            raise CheckFailedError(f"counts miss this run's user and messages: {counts}")
        return ", ".join(f"{k} {v}" for k, v in counts.items()), counts

    def admin_webhooks(self, token: str) -> tuple[str, None]:
        """GET /admin/webhooks lists them; a loopback target is refused (nothing is stored)."""
        listed = self.api("GET", "/api/v1/admin/webhooks", (200,), token=token)
        if not isinstance(listed.get("webhooks"), list):
            raise CheckFailedError(f"no webhooks list: {listed!r}")
        refused = self.api(
            "POST",
            "/api/v1/admin/webhooks",
            (400,),
            token=token,
            body={"url": "http://127.0.0.1:9/smoke", "events": ["user.registered"]},
        )
        if _get(refused, "error", "field") != "url":
            raise CheckFailedError(f"loopback webhook refused for another reason: {refused!r}")
        return f"{len(listed['webhooks'])} webhook(s); loopback target refused", None


# Where each API serves its OpenAPI document and docs page: the three services', and the
# OpenAI-compatible API's (served by chat).
API_PREFIXES = ("/api/v1/auth", "/api/v1/chat", "/api/v1/admin", "/v1")

# One route of each service: a revoked token must be refused by all three.
REVOCATION_PROBES = (
    ("auth", "/api/v1/auth/me"),
    ("chat", "/api/v1/chat/conversations"),
    ("admin", "/api/v1/admin/stats"),
)


def load_account(path: Path) -> tuple[str, str] | None:
    """Return the (email, password) saved in path, or None when there is no such file."""
    try:
        account = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"smoke: cannot read the saved account {path}: {exc}") from exc
    if not (
        isinstance(account, dict)
        and isinstance(account.get("email"), str)
        and isinstance(account.get("password"), str)
    ):
        raise SystemExit(f"smoke: {path} holds no email and password; delete it to start over")
    return account["email"], account["password"]


def save_account(path: Path, email: str, password: str) -> None:
    """Save the account in path, readable by its owner only, replacing it atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"email": email, "password": password}, out)
        out.write("\n")
    partial.replace(path)


def _http_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit(("http", parts.hostname or "", "", "", ""))


def _describe_openai_error(exc: openai.OpenAIError) -> str:
    """Say what the SDK's exception says: the status and OpenAI's error shape, or the cause."""
    if isinstance(exc, openai.APIStatusError):
        error = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else exc.body
        return f"{type(exc).__name__} {exc.status_code}: {json.dumps(error)[:200]}"
    return f"{type(exc).__name__}: {_root_cause(exc)}"


def _get(body: Any, *keys: str) -> Any:
    value = body
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise CheckFailedError(f"response has no {'.'.join(keys)}: {json.dumps(body)[:160]}")
        value = value[key]
    return value


def _json(event: SseEvent) -> dict[str, Any]:
    try:
        value = json.loads(event.data)
    except ValueError as exc:
        raise CheckFailedError(
            f"'{event.event}' event data is not JSON: {event.data[:160]}"
        ) from exc
    if not isinstance(value, dict):
        raise CheckFailedError(f"'{event.event}' event data is not an object: {event.data[:160]}")
    return value


def parse_client_args(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    """Parse the command line of a client of the deployed nginx (this one, restore_check's and
    rolling_load's): ``--base-url`` must be an https:// URL naming a host, and ``--insecure``
    (a self-signed certificate, accepted on purpose) silences urllib3's warning per request.
    """
    args = parser.parse_args(argv)
    parts = urlsplit(args.base_url)
    if parts.scheme != "https" or not parts.hostname:
        parser.error(f"--base-url must be an https:// URL, not {args.base_url!r}")
    if args.insecure:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line."""
    parser = argparse.ArgumentParser(
        description="Check a deployed chat bot system end to end through nginx over HTTPS.",
        epilog=f"The admin password may also come from ${ADMIN_PASSWORD_ENV}.",
    )
    parser.add_argument(
        "--base-url", required=True, help="HTTPS URL of nginx, e.g. https://10.231.0.11"
    )
    parser.add_argument(
        "--http-url",
        help="plain-HTTP URL for the redirect check (default: base URL, http, port 80)",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the TLS certificate (self-signed)"
    )
    parser.add_argument("--admin-email", help="also check the admin API with this account")
    parser.add_argument(
        "--admin-password",
        default=os.environ.get(ADMIN_PASSWORD_ENV),
        help=f"the admin's password (default: ${ADMIN_PASSWORD_ENV})",
    )
    parser.add_argument(
        "--account-file",
        type=Path,
        help="keep the test user in this file (mode 0600): register it on the first run and"
        " log in with it on later ones, instead of registering a new user every run",
    )
    # Bounds far above any real delay, as tests/waiting.py's: the test hosts share a busy
    # machine, and a slow answer is not what this test is about.
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per request (default 120)"
    )
    parser.add_argument(
        "--stream-timeout",
        type=float,
        default=120.0,
        help="seconds for a whole streamed reply (default 120)",
    )
    args = parse_client_args(parser, argv)
    if args.http_url and urlsplit(args.http_url).scheme != "http":
        parser.error(f"--http-url must be an http:// URL, not {args.http_url!r}")
    if bool(args.admin_email) != bool(args.admin_password):
        parser.error(f"give both --admin-email and --admin-password (or ${ADMIN_PASSWORD_ENV})")
    if args.timeout <= 0 or args.stream_timeout <= 0:
        parser.error("timeouts must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the smoke test; return the exit status."""
    return Smoke(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
