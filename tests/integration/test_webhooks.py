"""Webhooks end to end: a real receiver on 127.0.0.1 gets signed, retried, guarded deliveries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.assertions import assert_names_field
from tests.integration.conftest import finish_generations
from tests.integration.generation_support import messages_url, new_conversation
from tests.waiting import EVENT_TIMEOUT, wait_for
from webapp.extensions import db
from webapp.models import AuditEvent, WebhookDelivery, utcnow
from webapp.webhooks.commands import build_worker
from webapp.webhooks.worker import MAX_ATTEMPTS, WebhookWorker

pytestmark = pytest.mark.integration

SECRET = "webhook-test-secret-0123456789abcdef"
HOOKS = "/api/v1/admin/webhooks"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
# The console script installed next to this interpreter (the project's venv).
CHATBOT = str(Path(sys.executable).with_name("chatbot"))


# --- the receiver -------------------------------------------------------------------------------


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: records requests, answers the queued statuses, then 204.

    ``delay`` makes it slow: it answers no sooner than that many seconds after the request.
    """

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Run a real HTTP server on 127.0.0.1 in a thread for one test."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(Received(dict(self.headers.items()), body))
            time.sleep(state.delay)
            status = state.statuses.pop(0) if state.statuses else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            state.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def documented_verifier() -> Callable[..., bool]:
    """Return ``verify_webhook`` from the Python block of docs/webhooks.md, executed as is."""
    text = DOCS.read_text()
    section = text.split("### Verifying a delivery", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "no Python example in docs/webhooks.md"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    return namespace["verify_webhook"]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def hooks_app(app: Flask, make_app) -> Flask:
    """An app with WEBHOOK_SECRET set and loopback allow-listed (``app`` empties the tables)."""
    return make_app("all", WEBHOOK_SECRET=SECRET, WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")


@pytest.fixture
def hooks(hooks_app: Flask):
    """A test client of ``hooks_app``."""
    return hooks_app.test_client()


@pytest.fixture
def worker(hooks_app: Flask) -> Iterator[WebhookWorker]:
    """The worker as ``chatbot webhooks`` builds it, from ``hooks_app``."""
    with hooks_app.app_context():
        built = build_worker(hooks_app.extensions["settings"], db.engine)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def admin(auth):
    """An admin's tokens."""
    return auth.admin()


def register(hooks, admin, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    """Register a webhook through the API (which must succeed); return it."""
    response = hooks.post(
        HOOKS, json={"url": url, "events": events, **extra}, headers=admin.headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["webhook"]


def deliveries(hooks, admin, webhook_id: int, **params: str) -> list[dict[str, Any]]:
    """List a webhook's deliveries through the API, newest first."""
    response = hooks.get(
        f"{HOOKS}/{webhook_id}/deliveries", query_string=params, headers=admin.headers
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["deliveries"]


# --- signing ------------------------------------------------------------------------------------


def test_a_delivery_is_signed_and_the_documented_code_verifies_it(
    auth, hooks, admin, worker, receiver
):
    verify = documented_verifier()
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    auth.register("new@example.com")
    receiver.delay = 0.25  # the attempt takes at least that long

    started = time.monotonic()
    assert worker.deliver_due() == 1
    elapsed_ms = (time.monotonic() - started) * 1000

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    headers, body = request.headers, request.body
    assert headers["X-Chatbot-Event"] == "user.registered"
    assert headers["Content-Type"] == "application/json"
    assert verify(SECRET, headers, body)
    # A tampered body, another secret, a stale or future timestamp, a missing header: refused.
    assert not verify(SECRET, headers, body.replace(b"new@example.com", b"evil@example.com"))
    assert not verify("another-secret", headers, body)
    timestamp = int(headers["X-Chatbot-Timestamp"])
    assert verify(SECRET, headers, body, now=timestamp + 299)
    assert not verify(SECRET, headers, body, now=timestamp + 301)
    assert not verify(SECRET, headers, body, now=timestamp - 301)
    assert not verify(SECRET, {**headers, "X-Chatbot-Timestamp": str(timestamp + 1)}, body)
    assert not verify(SECRET, {"X-Chatbot-Timestamp": str(timestamp)}, body)

    document = request.document
    assert document["event"] == "user.registered"
    assert document["id"] == int(headers["X-Chatbot-Delivery"])
    assert document["data"]["user"]["email"] == "new@example.com"
    assert "password_hash" not in json.dumps(document)

    [delivery] = deliveries(hooks, admin, hook["id"])
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1
    assert delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempt_log"]] == [204]
    # The attempt's own duration: at least the receiver's delay, at most the whole run.
    assert 250 <= delivery["attempt_log"][0]["duration_ms"] <= elapsed_ms + 1


# --- retries ------------------------------------------------------------------------------------


def test_a_failed_attempt_is_retried_after_the_backoff(auth, hooks, admin, worker, receiver):
    receiver.statuses = [500]
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    auth.register("new@example.com")

    assert worker.deliver_due() == 1
    [delivery] = deliveries(hooks, admin, hook["id"])
    assert delivery["status"] == "failed"
    assert delivery["last_status_code"] == 500
    assert delivery["last_error"] == "HTTP 500"
    # Not due again before the first backoff (30 s).
    assert worker.deliver_due() == 0
    assert worker.deliver_due(now=utcnow() + timedelta(seconds=20)) == 0

    assert worker.deliver_due(now=utcnow() + timedelta(seconds=31)) == 1

    [delivery] = deliveries(hooks, admin, hook["id"])
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 2
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 204]
    assert [a["error"] for a in delivery["attempt_log"]] == ["HTTP 500", None]
    # The same delivery, signed afresh each time.
    first, second = receiver.requests
    assert first.headers["X-Chatbot-Delivery"] == second.headers["X-Chatbot-Delivery"]
    assert first.body == second.body


def test_a_delivery_is_dead_after_the_last_attempt(auth, hooks, admin, worker, receiver):
    receiver.statuses = [503] * MAX_ATTEMPTS
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    auth.register("new@example.com")

    later = utcnow()
    for _ in range(MAX_ATTEMPTS):
        assert worker.deliver_due(now=later) == 1
        later += timedelta(hours=2)
    assert worker.deliver_due(now=later) == 0

    [delivery] = deliveries(hooks, admin, hook["id"])
    assert delivery["status"] == "dead"
    assert delivery["attempts"] == MAX_ATTEMPTS == len(delivery["attempt_log"])
    assert len(receiver.requests) == MAX_ATTEMPTS


def test_a_redirect_is_not_followed(auth, hooks, admin, worker, receiver):
    receiver.statuses = [302]
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    auth.register("new@example.com")

    worker.deliver_due()

    [delivery] = deliveries(hooks, admin, hook["id"])
    assert delivery["status"] == "failed"
    assert "redirects are not followed" in delivery["last_error"]
    assert len(receiver.requests) == 1


# --- the address guard --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://0.0.0.0:{port}/hook",
        "ftp://127.0.0.1/hook",
        "http://user:pw@127.0.0.1:{port}/hook",
    ],
)
def test_a_loopback_or_private_target_is_refused_at_registration(app, auth, client, receiver, url):
    # The plain app: WEBHOOK_SECRET would not matter, the allow-list is empty.
    admin = auth.admin()
    port = receiver.url.split(":")[2].split("/")[0]
    response = client.post(
        HOOKS,
        json={"url": url.format(port=port), "events": ["user.registered"]},
        headers=admin.headers,
    )
    assert response.status_code in (400, 409), response.get_json()
    if response.status_code == 409:
        pytest.fail("the URL must be refused before the missing secret is even considered")
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("validation_error", "url")
    assert receiver.requests == []


def test_a_target_refused_later_is_not_contacted_at_delivery(
    auth, hooks, admin, make_app, receiver
):
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    auth.register("new@example.com")
    # The operator removes the allow-list; the worker restarts with the new settings.
    strict = make_app("all", WEBHOOK_SECRET=SECRET)
    with strict.app_context():
        strict_worker = build_worker(strict.extensions["settings"], db.engine)
    try:
        assert strict_worker.deliver_due() == 1
    finally:
        strict_worker.close()

    assert receiver.requests == []
    [delivery] = deliveries(hooks, admin, hook["id"])
    assert delivery["status"] == "failed"
    [attempt] = delivery["attempt_log"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("refused: ")
    assert "127.0.0.1 is a loopback address" in attempt["error"]


def test_registration_without_webhook_secret_is_409(app, auth, client, make_app, receiver):
    allowed = make_app("all", WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8").test_client()
    admin = auth.admin()
    response = allowed.post(
        HOOKS, json={"url": receiver.url, "events": ["user.registered"]}, headers=admin.headers
    )
    assert response.status_code == 409
    assert "WEBHOOK_SECRET" in response.get_json()["error"]["message"]


# --- events -------------------------------------------------------------------------------------


def test_user_disabled_fires_when_an_admin_disables_an_account(
    auth, hooks, admin, worker, receiver
):
    hook = register(hooks, admin, receiver.url, ["user.disabled"])
    alice = auth.signup("alice@example.com")  # user.registered: not subscribed

    response = hooks.post(f"/api/v1/admin/users/{alice.user['id']}/disable", headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    # Disabling again changes nothing and sends nothing.
    hooks.post(f"/api/v1/admin/users/{alice.user['id']}/disable", headers=admin.headers)
    worker.deliver_due()

    [request] = receiver.requests
    assert request.headers["X-Chatbot-Event"] == "user.disabled"
    user = request.document["data"]["user"]
    assert (user["id"], user["is_active"]) == (alice.user["id"], False)
    assert [d["event"] for d in deliveries(hooks, admin, hook["id"])] == ["user.disabled"]


def test_message_completed_fires_when_a_reply_is_stored(
    app, auth, client, hooks, admin, worker, receiver
):
    register(hooks, admin, receiver.url, ["message.completed"])
    alice = auth.signup("alice@example.com")
    conversation = new_conversation(client, alice)

    response = client.post(
        messages_url(conversation), json={"content": "hello"}, headers=alice.headers
    )
    assert response.status_code in (200, 201, 202), response.get_json()
    finish_generations(app)
    worker.deliver_due()

    [request] = receiver.requests
    assert request.headers["X-Chatbot-Event"] == "message.completed"
    data = request.document["data"]
    assert data["user_id"] == alice.user["id"]
    message = data["message"]
    assert (message["conversation_id"], message["role"], message["status"]) == (
        conversation,
        "assistant",
        "complete",
    )
    assert message["content"]


def test_message_completed_carries_the_message_as_the_api_gives_it(
    app, auth, client, hooks, admin, worker, receiver
):
    # The reply's statement builds the payload in SQL: it must be the API's message exactly.
    register(hooks, admin, receiver.url, ["message.completed"])
    alice = auth.signup("alice@example.com")
    conversation = new_conversation(client, alice)
    client.post(messages_url(conversation), json={"content": "hello"}, headers=alice.headers)
    finish_generations(app)
    worker.deliver_due()

    [request] = receiver.requests
    got = client.get(
        f"/api/v1/chat/conversations/{conversation}", headers=alice.headers
    ).get_json()["conversation"]
    assert request.document["data"]["message"] == got["messages"][-1]


def test_only_active_subscribed_webhooks_get_an_event(app, auth, hooks, admin, worker, receiver):
    paused = register(hooks, admin, receiver.url, ["user.registered"], active=False)
    other = register(hooks, admin, receiver.url, ["user.disabled"])
    live = register(hooks, admin, receiver.url, ["user.registered", "user.disabled"])

    auth.register("new@example.com")
    # A registration that fails (taken address) queues nothing.
    assert auth.register("new@example.com").status_code == 409

    with app.app_context():
        queued = db.session.execute(
            select(WebhookDelivery.webhook_id, func.count()).group_by(WebhookDelivery.webhook_id)
        ).all()
    assert dict(queued) == {live["id"]: 1}
    assert deliveries(hooks, admin, paused["id"]) == []
    assert deliveries(hooks, admin, other["id"]) == []

    # Resumed, the paused webhook gets later events (not the ones from while it was paused).
    hooks.patch(f"{HOOKS}/{paused['id']}", json={"active": True}, headers=admin.headers)
    auth.register("later@example.com")
    worker.deliver_due()
    assert len(deliveries(hooks, admin, paused["id"])) == 1
    assert len(receiver.requests) == 3


# --- redelivery and ping ------------------------------------------------------------------------


def test_manual_redelivery_sends_the_event_again(auth, hooks, admin, worker, receiver):
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    auth.register("new@example.com")
    [original] = deliveries(hooks, admin, hook["id"])
    url = f"{HOOKS}/{hook['id']}/deliveries/{original['id']}/redeliver"

    # Still pending: nothing to redeliver yet.
    assert hooks.post(url, headers=admin.headers).status_code == 409
    worker.deliver_due()

    response = hooks.post(url, headers=admin.headers)
    assert response.status_code == 202, response.get_json()
    again = response.get_json()["delivery"]
    assert again["redelivery_of"] == original["id"]
    assert (again["status"], again["attempts"], again["attempt_log"]) == ("pending", 0, [])
    assert again["payload"] == original["payload"]
    worker.deliver_due()

    first, second = receiver.requests
    assert second.headers["X-Chatbot-Delivery"] == str(again["id"])
    assert first.document["data"] == second.document["data"]
    assert {d["status"] for d in deliveries(hooks, admin, hook["id"])} == {"succeeded"}
    missing = f"{HOOKS}/{hook['id']}/deliveries/999999/redeliver"
    assert hooks.post(missing, headers=admin.headers).status_code == 404


def test_ping_reaches_even_a_paused_webhook(hooks, admin, worker, receiver):
    hook = register(hooks, admin, receiver.url, ["user.registered"], active=False)

    response = hooks.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)
    assert response.status_code == 202
    assert response.get_json()["delivery"]["event"] == "ping"
    worker.deliver_due()

    [request] = receiver.requests
    assert request.headers["X-Chatbot-Event"] == "ping"
    assert request.document["data"]["webhook"]["id"] == hook["id"]


# --- the admin API ------------------------------------------------------------------------------


def test_webhooks_are_managed_and_every_change_is_audited(app, hooks, admin, receiver):
    hook = register(hooks, admin, receiver.url, ["user.registered"], description="CRM")
    assert hook["events"] == ["user.registered"]
    assert (hook["active"], hook["description"]) == (True, "CRM")
    assert hook["created_by"] == admin.user["id"]

    listed = hooks.get(HOOKS, headers=admin.headers).get_json()["webhooks"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert hooks.get(f"{HOOKS}/{hook['id']}", headers=admin.headers).get_json()["webhook"] == hook

    response = hooks.patch(
        f"{HOOKS}/{hook['id']}",
        json={"events": ["user.disabled", "message.completed"], "active": False},
        headers=admin.headers,
    )
    assert response.status_code == 200
    changed = response.get_json()["webhook"]
    assert (changed["events"], changed["active"]) == (["user.disabled", "message.completed"], False)
    hooks.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)

    assert hooks.delete(f"{HOOKS}/{hook['id']}", headers=admin.headers).status_code == 204
    assert hooks.get(f"{HOOKS}/{hook['id']}", headers=admin.headers).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.target_type == "webhook").order_by(AuditEvent.id)
        ).all()
    assert [e.action for e in events] == [
        "admin.webhook_created",
        "admin.webhook_updated",
        "admin.webhook_pinged",
        "admin.webhook_deleted",
    ]
    assert {e.actor_id for e in events} == {admin.user["id"]}
    assert {e.target_id for e in events} == {str(hook["id"])}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["user.registered"]}, "url"),
        ({"url": "{url}"}, "events"),
        ({"url": "{url}", "events": []}, "events"),
        ({"url": "{url}", "events": ["user.deleted"]}, "events"),
        ({"url": "{url}", "events": "user.registered"}, "events"),
        ({"url": "{url}", "events": ["user.registered"], "secret": "x"}, "secret"),
        ({"url": "{url}", "events": ["user.registered"], "active": "yes"}, "active"),
        ({"url": "{url}", "events": ["user.registered"], "description": "x" * 201}, "description"),
        ({"url": "not a url", "events": ["user.registered"]}, "url"),
        ({"url": 5, "events": ["user.registered"]}, "url"),
    ],
)
def test_bad_webhook_input_is_400_naming_the_field(hooks, admin, receiver, body, field):
    body = {
        k: v.format(url=receiver.url) if k == "url" and isinstance(v, str) else v
        for k, v in body.items()
    }
    assert_names_field(hooks.post(HOOKS, json=body, headers=admin.headers), field)
    assert hooks.get(HOOKS, headers=admin.headers).get_json()["webhooks"] == []


def test_deliveries_are_filtered_and_paged(auth, hooks, admin, worker, receiver):
    receiver.statuses = [500]
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    for name in ("a", "b", "c"):
        auth.register(f"{name}@example.com")
    hooks.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)
    worker.deliver_due()  # the oldest (a@) fails once, the others succeed

    assert [d["event"] for d in deliveries(hooks, admin, hook["id"], event="ping")] == ["ping"]
    [failed] = deliveries(hooks, admin, hook["id"], status="failed")
    assert failed["payload"]["user"]["email"] == "a@example.com"

    url = f"{HOOKS}/{hook['id']}/deliveries"
    first = hooks.get(url, query_string={"limit": "3"}, headers=admin.headers).get_json()
    assert len(first["deliveries"]) == 3
    rest = hooks.get(
        url, query_string={"limit": "3", "cursor": first["next_cursor"]}, headers=admin.headers
    ).get_json()
    assert [d["id"] for d in rest["deliveries"]] == [failed["id"]]
    assert rest["next_cursor"] is None
    for params, name in (
        ({"status": "lost"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"x": "1"}, "x"),
    ):
        response = hooks.get(url, query_string=params, headers=admin.headers)
        assert response.status_code == 400
        assert response.get_json()["error"]["field"] == name


ROUTES = [
    ("get", HOOKS),
    ("post", HOOKS),
    ("get", f"{HOOKS}/1"),
    ("patch", f"{HOOKS}/1"),
    ("delete", f"{HOOKS}/1"),
    ("post", f"{HOOKS}/1/test"),
    ("get", f"{HOOKS}/1/deliveries"),
    ("get", f"{HOOKS}/1/deliveries/1"),
    ("post", f"{HOOKS}/1/deliveries/1/redeliver"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_webhook_routes_are_for_admins_only(auth, hooks, method, url):
    user = auth.signup("alice@example.com")
    kwargs: dict[str, Any] = {"json": {}} if method in ("post", "patch") else {}
    anonymous = getattr(hooks, method)(url, **kwargs)
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    forbidden = getattr(hooks, method)(url, headers=user.headers, **kwargs)
    assert forbidden.status_code == 403
    assert forbidden.get_json()["error"]["code"] == "forbidden"


# --- the worker process -------------------------------------------------------------------------


def test_the_worker_process_delivers_and_stops_cleanly_on_sigterm(
    auth, hooks, admin, receiver, subprocess_env
):
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    env = {**subprocess_env, "WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"}
    worker = subprocess.Popen(
        [CHATBOT, "webhooks", "run", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        auth.register("new@example.com")
        assert receiver.arrived.wait(EVENT_TIMEOUT), "the worker delivered nothing"
        # The worker has recorded the attempt (stopping it earlier would test a shutdown
        # half-way through a delivery instead).
        wait_for(
            lambda: [d for d in deliveries(hooks, admin, hook["id"]) if d["status"] == "succeeded"],
            "delivery recorded as succeeded",
            abandon=lambda: None if worker.poll() is None else f"worker exited {worker.returncode}",
        )
    finally:
        worker.terminate()  # SIGTERM, to this process only
        output, _ = worker.communicate(timeout=EVENT_TIMEOUT)
    assert worker.returncode == 0, output
    assert "webhook worker stopped" in output
    assert SECRET not in output
    [request] = receiver.requests
    assert documented_verifier()(SECRET, request.headers, request.body)


def _chatbot(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATBOT, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_deliver_due_command(auth, hooks, admin, receiver, subprocess_env):
    register(hooks, admin, receiver.url, ["user.registered"])
    auth.register("new@example.com")
    env = {**subprocess_env, "WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1"}

    result = _chatbot(["webhooks", "deliver-due"], env)

    assert result.returncode == 0, result.stderr
    assert "1 delivery attempt(s) made." in result.stdout
    assert len(receiver.requests) == 1
    assert SECRET not in result.stdout + result.stderr


def test_the_worker_refuses_to_start_without_a_secret(subprocess_env):
    result = _chatbot(["webhooks", "deliver-due"], subprocess_env)
    assert result.returncode != 0
    assert "WEBHOOK_SECRET is not set" in result.stderr


def test_finished_deliveries_are_pruned_after_the_retention(auth, hooks, admin, worker, receiver):
    receiver.statuses = [500]
    hook = register(hooks, admin, receiver.url, ["user.registered"])
    auth.register("a@example.com")  # fails once: stays queued for a retry
    auth.register("b@example.com")
    worker.deliver_due()

    assert worker.prune() == 0
    assert worker.prune(before=utcnow() + timedelta(days=31)) == 1

    [left] = deliveries(hooks, admin, hook["id"])
    assert (left["status"], left["payload"]["user"]["email"]) == ("failed", "a@example.com")
