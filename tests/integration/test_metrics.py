"""``/metrics`` of each service, in one process (the multi-worker case: test_metrics_gunicorn)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.generation_support import messages_url, new_conversation
from webapp import metrics
from webapp.chat.runtime import get_runner

pytestmark = pytest.mark.integration


def scrape(client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Return every sample of ``/metrics`` as {(name, labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    """Return one sample's value, 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def grown(before, after, name: str, **labels: str) -> float:
    """Return how much one series grew between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


def post_first_message(client, auth, content: str, accept: str | None = None, **options: Any):
    """Sign up, open a conversation, scrape, then post ``content`` to it.

    Returns:
        The user's headers, the conversation id, the scrape before the post, and the response.
    """
    tokens = auth.signup()
    cid = new_conversation(client, tokens)
    before = scrape(client)
    headers = tokens.headers if accept is None else {**tokens.headers, "Accept": accept}
    response = client.post(messages_url(cid), json={"content": content}, headers=headers, **options)
    return tokens.headers, cid, before, response


@pytest.mark.parametrize("service", ["auth", "chat", "admin"])
def test_every_service_serves_metrics_in_prometheus_format(make_app, service):
    client = make_app(service).test_client()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response.headers["Cache-Control"] == "no-store"
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"http_requests", "http_request_duration_seconds", "auth_logins"} <= names
    assert {"llm_requests", "llm_tokens", "llm_fallbacks", "llm_cache_hits"} <= names


def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.mimetype == "application/openmetrics-text"
    assert response.text.endswith("# EOF\n")


def test_metrics_relayed_by_the_proxy_are_refused(client):
    response = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_requests_are_counted_by_url_rule_not_raw_path(make_app, auth):
    client = make_app("chat").test_client()
    headers = auth.signup().headers
    before = scrape(client)
    for cid in (101, 102, 103):
        assert client.get(f"/api/v1/chat/conversations/{cid}", headers=headers).status_code == 404
    assert client.get("/no/such/page/1").status_code == 404
    assert client.get("/no/such/page/2").status_code == 404
    assert client.open("/health", method="BREW").status_code == 405
    after = scrape(client)

    route = "/api/v1/chat/conversations/<int:conversation_id>"
    labels = {"service": "chat", "method": "GET", "route": route}
    assert grown(before, after, "http_requests_total", **labels, status="404") == 3
    assert grown(before, after, "http_request_duration_seconds_count", **labels) == 3
    unmatched = {"service": "chat", "method": "GET", "route": "<unmatched>", "status": "404"}
    assert grown(before, after, "http_requests_total", **unmatched) == 2
    other = {"service": "chat", "method": "other", "route": "<unmatched>", "status": "405"}
    assert grown(before, after, "http_requests_total", **other) == 1
    # No series names a raw path or a made-up method.
    for _name, series in after:
        labels_of = dict(series)
        assert "/101" not in labels_of.get("route", "")
        assert "/no/such" not in labels_of.get("route", "")
        assert labels_of.get("method") != "BREW"


def test_route_label_drops_converter_arguments():
    assert metrics.route_label("/c/<int(min=1, max=9):cid>/m") == "/c/<int:cid>/m"
    assert metrics.route_label("/a/<name>") == "/a/<name>"
    assert metrics.route_label(None) == metrics.UNMATCHED_ROUTE


def test_logins_are_counted_by_result(client, auth):
    auth.register()
    before = scrape(client)
    auth.login()
    auth.login(password="not the password")
    auth.login(password="not the password either")
    after = scrape(client)
    for result, expected in (("success", 1), ("failure", 2)):
        delta = grown(before, after, "auth_logins_total", result=result)
        assert delta == expected, result


@pytest.mark.parametrize("stream", [False, True])
def test_model_replies_are_counted_with_tokens_and_duration(client, auth, stream):
    accept = "text/event-stream" if stream else "application/json"
    headers, cid, before, response = post_first_message(client, auth, "Hello there", accept)
    body = response.get_data(as_text=True)  # consumes the stream to its end
    assert response.status_code == (200 if stream else 201), body
    after = scrape(client)

    model = "offline"
    assert grown(before, after, "llm_requests_total", model=model, outcome="success") == 1
    assert grown(before, after, "llm_request_duration_seconds_count", model=model) == 1
    reply = client.get(f"/api/v1/chat/conversations/{cid}", headers=headers).get_json()[
        "conversation"
    ]["messages"][-1]
    for direction, field in (("in", "tokens_in"), ("out", "tokens_out")):
        delta = grown(before, after, "llm_tokens_total", model=model, direction=direction)
        assert delta == reply[field] > 0, direction


def test_a_reply_the_client_abandons_is_still_generated_and_counted(app, client, auth):
    # Generation does not depend on the connection: a client that leaves after the first token
    # can come back for the reply (see test_streaming.py); only a stop cancels it.
    _, _, before, response = post_first_message(
        client, auth, "Tell me a long story", "text/event-stream", buffered=False
    )
    received = b""
    for chunk in response.response:
        received += chunk
        if b"event: token" in received:
            break
    response.close()  # the client goes away after the first token
    get_runner(app).shutdown(wait=True)  # lets the generation finish
    after = scrape(client)
    for outcome, expected in (("cancelled", 0), ("success", 1)):
        labels = {"model": "offline", "outcome": outcome}
        delta = grown(before, after, "llm_requests_total", **labels)
        assert delta == expected, outcome


def test_failed_generation_is_counted_as_an_error(app, client, auth):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from webapp.bot import Bot
    from webapp.chat.runtime import BOT_EXTENSION

    failing = FakeListChatModel(responses=["never sent"], error_on_chunk_number=0)
    app.extensions[BOT_EXTENSION] = Bot(failing, model_name="offline")
    _, _, before, response = post_first_message(client, auth, "Hi")
    assert response.status_code == 502
    after = scrape(client)
    labels = {"model": "offline", "outcome": "error"}
    assert grown(before, after, "llm_requests_total", **labels) == 1


def test_unknown_llm_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown LLM call outcome"):
        metrics.record_llm_call("m", outcome="maybe", duration=1.0)


def test_fallback_and_cache_hit_counters(client):
    before = scrape(client)
    metrics.record_llm_fallback()
    metrics.record_llm_cache_hit()
    metrics.record_llm_cache_hit()
    after = scrape(client)
    assert grown(before, after, "llm_fallbacks_total") == 1
    assert grown(before, after, "llm_cache_hits_total") == 2
