"""Prometheus metrics of every service, correct under several gunicorn workers.

Each gunicorn worker is a separate process with its own counters. When
``PROMETHEUS_MULTIPROC_DIR`` is set (as the systemd unit does), prometheus-client keeps every
value in a memory-mapped file per process in that directory, and a scrape of ``/metrics``, served
by whichever worker gets it, adds up the files of all workers, dead or alive. Without the variable
(tests, ``flask run``) the values live in this process and the default registry serves them.

The directory must be empty when the service starts (stale files would be added to the new
counts) and ``mark_process_dead`` must run when a worker exits: `webapp.gunicorn_hooks` does both.

Series:

- ``http_requests_total{service,method,route,status}`` and
  ``http_request_duration_seconds{service,method,route}``: every request, labelled with the URL
  rule it matched (``/api/v1/chat/conversations/<int:conversation_id>``), never the raw path, so
  the number of series stays bounded whatever clients send; requests that matched no rule are
  ``route="<unmatched>"``. The duration runs until the response is ready to be sent: for a
  streamed reply that is when streaming starts (``llm_request_duration_seconds`` covers the
  generation itself).
- ``auth_logins_total{result}``: login attempts, ``success`` or ``failure``.
- ``llm_requests_total{model,outcome}``, ``llm_tokens_total{model,direction}``,
  ``llm_request_duration_seconds{model}``, ``llm_fallbacks_total``, ``llm_cache_hits_total``: model
  calls, recorded by the chat service.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from flask import Flask, Response, current_app, request, request_finished, request_started
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder
from werkzeug.exceptions import NotFound

from webapp.routing import ID_CONVERTERS

__all__ = [
    "LLM_OUTCOMES",
    "METRICS_PATH",
    "MULTIPROC_DIR_ENV",
    "UNMATCHED_ROUTE",
    "init_app",
    "metrics_view",
    "record_llm_cache_hit",
    "record_llm_call",
    "record_llm_fallback",
    "record_login",
    "route_label",
]

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
UNMATCHED_ROUTE = "<unmatched>"
LLM_OUTCOMES = ("success", "error", "cancelled")
"""``success``: a reply was stored; ``error``: the model (or storing its reply) failed;
``cancelled``: the user stopped the reply (POST .../replies/<id>/stop) before it was complete."""

# Methods a client may send are arbitrary tokens; anything outside this set is counted as
# "other", so made-up methods cannot create new series.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Converter arguments (`<int(min=1, max=2147483647):id>`) say nothing about the route and make
# labels hard to read and to match in PromQL; `<int:id>` keeps the rule recognisable. The id
# converters (`<id:id>`, `<bigid:id>`) are integers too, labelled as such: the range of a column
# is not the route's business, and the labels stay what dashboards already match.
_CONVERTER_ARGUMENTS = re.compile(r"<(\w+)\([^)>]*\):")
_ID_CONVERTER = re.compile(rf"<(?:{'|'.join(ID_CONVERTERS)}):")
# LLM calls take from well under a second (cache, offline model) to minutes (long replies).
_LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_STARTED_AT = "webapp.metrics.started_at"

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by service, method, URL rule and status.",
    ["service", "method", "route", "status"],
)
# No status label: it would multiply the bucket series (the costly part of a histogram) by every
# status a route can return, while the error rate already comes from http_requests_total.
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to handle an HTTP request, until the response is ready to be sent.",
    ["service", "method", "route"],
)
AUTH_LOGINS = Counter(
    "auth_logins_total",
    "Login attempts by outcome.",
    ["result"],
)
LLM_REQUESTS = Counter(
    "llm_requests_total",
    "Replies asked of a language model, by model and outcome.",
    ["model", "outcome"],
)
LLM_TOKENS = Counter(
    "llm_tokens_total",
    "Tokens a language model read (direction=in) and wrote (direction=out).",
    ["model", "direction"],
)
LLM_REQUEST_DURATION = Histogram(
    "llm_request_duration_seconds",
    "Time from asking a model for a reply until the reply is stored or fails.",
    ["model"],
    buckets=_LLM_BUCKETS,
)
LLM_FALLBACKS = Counter(
    "llm_fallbacks_total",
    "Replies answered by the fallback model because the primary failed.",
)
LLM_CACHE_HITS = Counter(
    "llm_cache_hits_total",
    "Replies served from the reply cache without calling a model.",
)


def record_login(success: bool) -> None:
    """Count one login attempt.

    Args:
        success: Whether the credentials were accepted.
    """
    AUTH_LOGINS.labels(result="success" if success else "failure").inc()


def record_llm_call(
    model: str,
    *,
    outcome: str,
    duration: float,
    tokens_in: int = 0,
    tokens_out: int = 0,
) -> None:
    """Count one reply asked of a model, with its duration and tokens.

    Args:
        model: Name of the model that answered (or, on failure, that was asked).
        outcome: One of ``LLM_OUTCOMES``.
        duration: Seconds from asking until the reply was stored or failed.
        tokens_in: Prompt tokens the model read.
        tokens_out: Tokens the model wrote.

    Raises:
        ValueError: If ``outcome`` is not one of ``LLM_OUTCOMES`` (a free-form outcome would
            create series nobody queries for).
    """
    if outcome not in LLM_OUTCOMES:
        msg = f"unknown LLM call outcome {outcome!r}; expected one of {', '.join(LLM_OUTCOMES)}"
        raise ValueError(msg)
    LLM_REQUESTS.labels(model=model, outcome=outcome).inc()
    LLM_REQUEST_DURATION.labels(model=model).observe(max(duration, 0.0))
    # Counters only go up: a negative count from a confused provider must not raise here.
    if tokens_in > 0:
        LLM_TOKENS.labels(model=model, direction="in").inc(tokens_in)
    if tokens_out > 0:
        LLM_TOKENS.labels(model=model, direction="out").inc(tokens_out)


def record_llm_fallback() -> None:
    """Count one reply the fallback model answered because the primary failed."""
    LLM_FALLBACKS.inc()


def record_llm_cache_hit() -> None:
    """Count one reply served from the reply cache."""
    LLM_CACHE_HITS.inc()


def route_label(rule: str | None) -> str:
    """Return the ``route`` label for a URL rule.

    Args:
        rule: The rule the request matched (``request.url_rule.rule``), or None if none did.

    Returns:
        The rule without converter arguments, or ``UNMATCHED_ROUTE``.
    """
    if rule is None:
        return UNMATCHED_ROUTE
    return _ID_CONVERTER.sub("<int:", _CONVERTER_ARGUMENTS.sub(r"<\1:", rule))


def _on_request_started(sender: Flask, **_extra: Any) -> None:
    # A signal rather than a before_request function: it fires before every before_request
    # function (rate limiter, CSRF check...), even ones that end the request early.
    # Kept in the WSGI environ, which is the request's own; `g` can outlive a request when an
    # app context was pushed around it (as tests do).
    request.environ[_STARTED_AT] = time.perf_counter()


def _on_request_finished(sender: Flask, response: Response, **_extra: Any) -> None:
    # Sent after every after_request function, with the response as the client gets it, for
    # handled errors too (404, 500 from the error handlers).
    started = request.environ.get(_STARTED_AT)
    service = sender.config["SERVICE_NAME"]
    method = request.method if request.method in _KNOWN_METHODS else "other"
    route = route_label(request.url_rule.rule if request.url_rule is not None else None)
    HTTP_REQUESTS.labels(
        service=service, method=method, route=route, status=str(response.status_code)
    ).inc()
    if started is not None:
        HTTP_REQUEST_DURATION.labels(service=service, method=method, route=route).observe(
            time.perf_counter() - started
        )


def _registry() -> CollectorRegistry:
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if not directory:
        return REGISTRY
    # A fresh registry per scrape, as prometheus-client prescribes for multiprocess mode: the
    # collector reads every worker's files at collection time.
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def metrics_view() -> Response:
    """Serve the metrics of every worker of this service in the Prometheus text format.

    Returns:
        The exposition, in the format the scraper's ``Accept`` header asks for.

    Raises:
        NotFound: For a request relayed by a proxy (see ``init_app``).
    """
    if "X-Forwarded-For" in request.headers:
        # nginx sets X-Forwarded-For on everything it relays, and /metrics is for the scraper
        # on the private network only: should the proxy ever pass it on, it still stays private.
        current_app.logger.warning("refused /metrics relayed by a proxy")
        raise NotFound()
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encoder(_registry()), content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Measure every request of ``app`` and serve ``GET /metrics``.

    ``/metrics`` sits at the root, outside ``/api/v1``, so the public proxy does not route it to
    the service (nginx must also refuse it at its default location; requests it relays are
    refused here too).

    Args:
        app: The application; its ``SERVICE_NAME`` becomes the ``service`` label.
    """
    # Connected for this app only; module-level receivers, so blinker's weak references hold.
    request_started.connect(_on_request_started, app)
    request_finished.connect(_on_request_finished, app)
    app.add_url_rule(METRICS_PATH, "metrics", metrics_view, methods=["GET"])
