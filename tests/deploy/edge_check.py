#!/usr/bin/env python3
"""Check the HTTP edge of a deployed system: what nginx and gunicorn answer to oversized,
too frequent and unrouted API requests, and that every response agrees with the OpenAPI documents.

Usage (from the controller)::

    python tests/deploy/edge_check.py --base-url https://10.231.0.11 --insecure \\
        --admin-email admin@example.com        # password: CHATBOT_EDGE_ADMIN_PASSWORD

Checks, in order, each printing one line:

    body-too-large-for-nginx  a body over nginx_client_max_body_size, on every API prefix:
                              413 in the API's JSON error shape (nginx's own error); on /v1
                              in OpenAI's (message, type, param, code)
    body-too-large-for-app    bodies of 129 KiB to 1 MiB (past the app's limit, within nginx's),
                              several times each, to each service: the app's 413 (or the 401,
                              403, 404 it answers first) in JSON, never nginx's 502
    uri-too-long              a URI over 8000 bytes: 414 in JSON (nginx), not gunicorn's HTML;
                              one of 8000 bytes reaches the app (its JSON answer)
    header-too-large          a header line over 8 KiB: 400 in JSON
    internal-path             /metrics through nginx: 404 in JSON
    schema-fuzz               schemathesis over every operation of the three served documents,
                              with a user's token (and the admin's on GET operations): no
                              server error, every status, content type and body as documented
    rate-limited              requests over nginx_api_rate_limit: 429 in JSON with Retry-After
                              and the security headers; afterwards requests pass again

Exit status: 0 when every check passed, 1 when one failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
import urllib3

# The app's error codes: nginx's JSON errors must use the same (the controller has the app
# installed, as for the integration tests).
from webapp.errors import http_error_code

ADMIN_PASSWORD_ENV = "CHATBOT_EDGE_ADMIN_PASSWORD"
USER_AGENT = "chatbot-edge-check/1"
API_PREFIXES = ("/api/v1/auth", "/api/v1/chat", "/api/v1/admin", "/api/v1/unrouted", "/v1")
# The OpenAI-compatible API: nginx's errors there are in OpenAI's shape (also type and param).
OPENAI_PREFIXES = ("/v1",)
SERVICES = ("auth", "chat", "admin")
# Bodies nginx accepts (its default limit is 1 MiB) but the app refuses (over 128 KiB).
APP_REFUSED_SIZES = (129 * 1024, 300 * 1024, 900 * 1024, 1000 * 1024)
REPEATS = 4
NGINX_REFUSED_SIZE = 3 * 1024 * 1024
MAX_URI = 8000
# Generated requests per operation, role and generation mode through nginx (a bounded sample:
# the full run is in tests/integration/test_openapi_fuzz.py).
FUZZ_EXAMPLES = 3
# Requests sent at most to get past the rate limit, and seconds to wait for it to let requests
# through again afterwards.
RATE_LIMIT_REQUESTS = 400
RATE_LIMIT_RECOVERY = 60.0
EDGE_USER = "edge-check@example.com"
EDGE_PASSWORD = "edge check password 42"


class CheckFailedError(Exception):
    """A check found the system misbehaving; the message says how."""


class Edge:
    """The deployed system behind nginx, and the requests the checks send to it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.base = args.base_url.rstrip("/")
        self.verify = not args.insecure
        self.admin_email = args.admin_email
        self.admin_password = args.admin_password or os.environ.get(ADMIN_PASSWORD_ENV, "")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request through nginx, retrying once after nginx's own 429."""
        kwargs.setdefault("timeout", 60)
        # Per request: a session's verify loses to REQUESTS_CA_BUNDLE from the environment.
        kwargs.setdefault("verify", self.verify)
        response = self.session.request(method, self.base + path, **kwargs)
        if response.status_code == 429 and "/api/" in path:
            time.sleep(int(response.headers.get("Retry-After", "1")))
            response = self.session.request(method, self.base + path, **kwargs)
        return response

    def tokens(self) -> dict[str, dict[str, str]]:
        """Return Authorization headers of a user (created once) and of the admin."""
        headers = {}
        for role, email, password in (
            ("user", EDGE_USER, EDGE_PASSWORD),
            ("admin", self.admin_email, self.admin_password),
        ):
            login = {"email": email, "password": password}
            response = self.send("POST", "/api/v1/auth/login", json=login)
            if response.status_code == 401 and role == "user":
                registered = self.send("POST", "/api/v1/auth/register", json=login)
                if registered.status_code != 201:
                    raise CheckFailedError(f"registering {email}: {registered.status_code}")
                response = self.send("POST", "/api/v1/auth/login", json=login)
            if response.status_code != 200:
                raise CheckFailedError(f"login of {email}: {response.status_code}")
            headers[role] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return headers


def expect_json_error(response: requests.Response, status: int, what: str) -> dict[str, Any]:
    """Check a response is ``status`` in the API's error shape, with the app's code for it."""
    if response.status_code != status:
        raise CheckFailedError(f"{what}: {response.status_code}, expected {status}")
    content_type = response.headers.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        raise CheckFailedError(f"{what}: Content-Type {content_type!r}: {response.text[:200]!r}")
    error = response.json().get("error")
    if not isinstance(error, dict) or not error.get("message"):
        raise CheckFailedError(f"{what}: not the error shape: {response.text[:200]!r}")
    if error.get("code") != http_error_code(status):
        raise CheckFailedError(f"{what}: code {error.get('code')!r}, not {http_error_code(status)}")
    for header in ("Strict-Transport-Security", "X-Content-Type-Options"):
        if header not in response.headers:
            raise CheckFailedError(f"{what}: no {header} header")
    return error


def check_body_too_large_for_nginx(edge: Edge) -> str:
    body = b"x" * NGINX_REFUSED_SIZE
    for prefix in API_PREFIXES:
        response = edge.send("POST", f"{prefix}/anything", data=body)
        what = f"POST {prefix} with {len(body)} bytes"
        error = expect_json_error(response, 413, what)
        if prefix in OPENAI_PREFIXES and not {"type", "param"} <= set(error):
            raise CheckFailedError(f"{what}: not OpenAI's error shape: {response.text[:200]!r}")
    return f"{len(API_PREFIXES)} API prefixes answer 413 in JSON (OpenAI's shape on /v1)"


def check_body_too_large_for_app(edge: Edge) -> str:
    tokens = edge.tokens()
    targets = (
        # Refused on Content-Length, by each service.
        ("PATCH", "/api/v1/auth/me", tokens["user"], 413),
        ("POST", "/api/v1/chat/conversations", tokens["user"], 413),
        ("POST", "/api/v1/admin/webhooks", tokens["admin"], 413),
        # Refused before the body is read.
        ("POST", "/api/v1/chat/conversations", {}, 401),
        ("POST", "/api/v1/admin/webhooks", tokens["user"], 403),
        ("POST", "/api/v1/auth/no-such-route", {}, 404),
    )
    count = 0
    for size in APP_REFUSED_SIZES:
        body = b'{"email": "' + b"x" * size + b'"}'
        for method, path, headers, status in targets:
            for _ in range(REPEATS):
                response = edge.send(
                    method,
                    path,
                    data=body,
                    headers={"Content-Type": "application/json", **headers},
                )
                expect_json_error(response, status, f"{method} {path} with {len(body)} bytes")
                count += 1
    return f"{count} oversized bodies got the app's JSON answer, none a 502"


def check_uri_too_long(edge: Edge) -> str:
    path = "/api/v1/chat/conversations?q="
    response = edge.send("GET", path + "a" * (MAX_URI + 1000))
    expect_json_error(response, 414, "a 9000-byte URI")
    # At the limit the request reaches the app, which answers in JSON (401: no token).
    response = edge.send("GET", path + "a" * (MAX_URI - len(path)))
    expect_json_error(response, 401, "an 8000-byte URI")
    return "over 8000 bytes: nginx's 414 in JSON; at 8000: the app's answer"


def check_header_too_large(edge: Edge) -> str:
    response = edge.send("GET", "/api/v1/auth/me", headers={"X-Long": "h" * 10000})
    expect_json_error(response, 400, "a 10000-byte header")
    return "400 in JSON"


def check_internal_path(edge: Edge) -> str:
    expect_json_error(edge.send("GET", "/metrics"), 404, "GET /metrics")
    return "/metrics is 404 in JSON through nginx"


def check_schema_fuzz(edge: Edge) -> str:
    # Imported here: only this check needs it (a dev dependency, as for the integration tests).
    import schemathesis
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schema_fuzz import RESPONSE_CHECKS, fuzz_settings
    from schemathesis.core.failures import FailureGroup
    from schemathesis.generation import GenerationMode

    tokens = edge.tokens()
    failures: list[str] = []
    operations = 0

    def fuzz(operation: Any, headers: dict[str, str], mode: GenerationMode) -> None:
        @fuzz_settings(FUZZ_EXAMPLES, derandomize=True)
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(
                base_url=edge.base, headers=headers, verify=edge.verify, timeout=60
            )
            case.validate_response(response, checks=RESPONSE_CHECKS)

        run()

    for service in SERVICES:
        schema = schemathesis.openapi.from_url(
            f"{edge.base}/api/v1/{service}/openapi.json", verify=edge.verify
        )
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            for role, headers in tokens.items():
                # The admin only reads here: a generated write could change the deployed
                # admin's own password or disable accounts others use (the in-process run,
                # tests/integration/test_openapi_fuzz.py, covers the admin's writes).
                if role == "admin" and operation.method.upper() != "GET":
                    continue
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    try:
                        fuzz(operation, headers, mode)
                    except Unsatisfiable:
                        pass  # no parameter or body to make invalid
                    except (Exception, FailureGroup) as exc:  # each failure is reported
                        failures.append(f"{operation.label} ({role}, {mode.value}): {exc}")
    if failures:
        raise CheckFailedError(f"{len(failures)} disagreements:\n" + "\n\n".join(failures))
    return f"{operations} operations agree with their documents (user; admin on GET)"


def check_rate_limited(edge: Edge) -> str:
    url = edge.base + "/api/v1/auth/openapi.json"

    def get(_: int) -> requests.Response:
        return edge.session.get(url, timeout=60, verify=edge.verify)

    limited = None
    with ThreadPoolExecutor(max_workers=8) as pool:
        for response in pool.map(get, range(RATE_LIMIT_REQUESTS)):
            if response.status_code == 429 and limited is None:
                limited = response
    if limited is None:
        raise CheckFailedError(f"{RATE_LIMIT_REQUESTS} requests at once were never limited")
    error = expect_json_error(limited, 429, "a request over the rate limit")
    retry_after = limited.headers.get("Retry-After", "")
    if not retry_after.isdigit() or int(retry_after) < 1:
        raise CheckFailedError(f"429 with Retry-After {retry_after!r}")
    if error.get("retry_after") != int(retry_after):
        raise CheckFailedError(f"429 body retry_after {error.get('retry_after')!r}")
    # Leave the address unlimited for whatever runs next: wait for a request to pass.
    deadline = time.monotonic() + RATE_LIMIT_RECOVERY
    while get(0).status_code == 429:
        if time.monotonic() > deadline:
            raise CheckFailedError(f"still limited {RATE_LIMIT_RECOVERY} s later")
        time.sleep(int(retry_after))
    return f"429 in JSON with Retry-After: {retry_after}"


CHECKS: tuple[tuple[str, Callable[[Edge], str]], ...] = (
    ("body-too-large-for-nginx", check_body_too_large_for_nginx),
    ("body-too-large-for-app", check_body_too_large_for_app),
    ("uri-too-long", check_uri_too_long),
    ("header-too-large", check_header_too_large),
    ("internal-path", check_internal_path),
    ("schema-fuzz", check_schema_fuzz),
    ("rate-limited", check_rate_limited),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="https://<host> of nginx")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed cert")
    parser.add_argument("--admin-email", required=True, help="the admin account for the fuzzer")
    parser.add_argument("--admin-password", help=f"else from ${ADMIN_PASSWORD_ENV}")
    parser.add_argument(
        "--only", action="append", choices=[name for name, _ in CHECKS], help="run only these"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the checks; return the exit status."""
    args = parse_args(argv)
    if args.insecure:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    edge = Edge(args)
    if not edge.admin_password:
        print(f"no admin password (--admin-password or ${ADMIN_PASSWORD_ENV})", file=sys.stderr)
        return 2
    failed = 0
    selected = [(name, check) for name, check in CHECKS if not args.only or name in args.only]
    for name, check in selected:
        started = time.monotonic()
        try:
            detail = check(edge)
        except (CheckFailedError, requests.RequestException) as exc:
            failed += 1
            print(f"FAIL {name}: {str(exc)[:4000]}", flush=True)
        else:
            print(f"ok   {name}: {detail} ({time.monotonic() - started:.1f} s)", flush=True)
    print(f"{len(selected) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
