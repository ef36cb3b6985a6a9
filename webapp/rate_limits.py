"""Rate limits: Flask-Limiter with its counters in Redis, shared by every worker and service.

The limits (moving windows):

- **General API limit**, ``RATE_LIMIT_REQUESTS`` per ``RATE_LIMIT_WINDOW`` seconds over every
  ``/api/`` route of the three services and the OpenAI-compatible ``/v1/`` together, per user
  (the subject of a validly signed token, or the owner of the API key that authenticated a
  ``/v1`` request) or, for anonymous requests, per client address.
- **Login** (``POST /api/v1/auth/login`` and ``POST /api/v1/auth/session`` together):
  ``LOGIN_RATE_LIMIT`` per client address, counting every attempt, and per account (the email
  sent), counting failed attempts only, so a user who types the password right is never held
  up by their own successful logins.
- **Register**: ``REGISTER_RATE_LIMIT`` per client address and per email.
- **Password change**: ``LOGIN_RATE_LIMIT`` per user, counting wrong current passwords: a
  stolen access token must not become a way to guess the password.

A limited request gets 429 with ``Retry-After`` (seconds) and the shared error shape with
``retry_after``.

**Redis outage: fail open, but still limited, on every route.** Flask-Limiter falls back to
counters in the memory of each worker process (``in_memory_fallback_enabled``) and returns to
Redis once it answers again. Every limit keeps applying, per process instead of per cluster: an
attacker gets at most (workers x app hosts) times the configured login budget for the length
of the outage, while users keep logging in and reading their data. Failing closed instead
would turn a cache outage into a full lock-out once access tokens expire.

The client address is ``request.remote_addr`` after ``ProxyFix`` has taken it from the
``X-Forwarded-For`` that nginx sets (``TRUSTED_PROXY_COUNT``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask_jwt_extended import decode_token
from flask_limiter import Limiter, RateLimitExceeded
from redis import Redis

from webapp.emails import canonical_email
from webapp.error_handlers import error_response
from webapp.models import EMAIL_MAX_LENGTH
from webapp.settings import Settings

__all__ = [
    "API_KEY_OWNER",
    "LOGIN_ACCOUNT",
    "LOGIN_IP",
    "PASSWORD_CHANGE",
    "RATE_LIMITER_EXTENSION",
    "REGISTER_ACCOUNT",
    "REGISTER_IP",
    "LimitRule",
    "init_rate_limits",
    "limited",
    "retry_after_seconds",
]

RATE_LIMITER_EXTENSION = "rate_limiter"
API_KEY_OWNER = "webapp.api_key_owner"
"""WSGI environ key: the id of the user whose API key authenticated the request. Set before the
limits are checked (``webapp.openai_api``), so a key's requests count as its owner's."""
# The paths the general limit counts: the three services' API and the OpenAI-compatible one.
_API_PREFIXES = ("/api/", "/v1/")
_RULES_ATTRIBUTE = "_webapp_rate_limit_rules"
_FAILED_CREDENTIALS = (401, 403)

_View = TypeVar("_View", bound=Callable[..., Any])


def _client_key() -> str:
    return f"ip:{request.remote_addr or 'unknown'}"


def _token_subject() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    csrf_value = None
    if scheme.lower() != "bearer" or not token.strip():
        config = current_app.config
        token = request.cookies.get(config["JWT_ACCESS_COOKIE_NAME"], "")
        # The CSRF value Flask-JWT-Extended will decode the cookie's token with, so that its
        # decode is the one done here (webapp.extensions.RequestJWTManager keeps it).
        if config["JWT_COOKIE_CSRF_PROTECT"] and request.method in config["JWT_CSRF_METHODS"]:
            csrf_value = request.headers.get(config["JWT_ACCESS_CSRF_HEADER_NAME"]) or None
    if not token:
        return None
    try:
        # Signature and expiry are checked (so nobody can spend someone else's budget, or
        # spread over made-up users); revocation is the view's business.
        subject = decode_token(token.strip(), csrf_value).get("sub")
    except Exception:  # any unusable token makes the request anonymous
        return None
    return subject if isinstance(subject, str) else None


def _user_or_client_key() -> str:
    owner = request.environ.get(API_KEY_OWNER)
    if owner is not None:
        return f"user:{owner}"
    subject = _token_subject()
    return f"user:{subject}" if subject else _client_key()


# Typed text normalised for a key; NFKC can make a string longer, so it is cut first.
_KEY_INPUT_MAX_LENGTH = 4 * EMAIL_MAX_LENGTH


def _account_key() -> str:
    # Reads the body before the view does; a key function must never raise (Flask-Limiter
    # would take the exception for a storage failure), so anything odd falls back to the IP.
    try:
        body = request.get_json(silent=True)
    except Exception:
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return _client_key()
    # The canonical form: a look-alike of the address (full-width, other case) is the same
    # account and shares its limit.
    return f"account:{canonical_email(email[:_KEY_INPUT_MAX_LENGTH])[:EMAIL_MAX_LENGTH]}"


def _failed_credentials(response: Response) -> bool:
    return response.status_code in _FAILED_CREDENTIALS


def _not_an_api_request() -> bool:
    # Health probes, metrics scrapes and CORS preflights are not API use.
    return not request.path.startswith(_API_PREFIXES) or request.method == "OPTIONS"


@dataclass(frozen=True)
class LimitRule:
    """One rate limit a view is subject to.

    Attributes:
        setting: Name of the :class:`Settings` attribute holding the limit ("10 per minute").
        scope: Bucket name; views with the same scope share their counters.
        key: Returns what the limit counts per ("ip:...", "account:...", "user:...").
        counts: Decides from the response whether it counts; None counts every request.
    """

    setting: str
    scope: str
    key: Callable[[], str]
    counts: Callable[[Response], bool] | None = None


LOGIN_IP = LimitRule("login_rate_limit", "login-ip", _client_key)
LOGIN_ACCOUNT = LimitRule("login_rate_limit", "login-account", _account_key, _failed_credentials)
REGISTER_IP = LimitRule("register_rate_limit", "register-ip", _client_key)
REGISTER_ACCOUNT = LimitRule("register_rate_limit", "register-account", _account_key)
PASSWORD_CHANGE = LimitRule(
    "login_rate_limit", "password-change", _user_or_client_key, _failed_credentials
)


def limited(*rules: LimitRule) -> Callable[[_View], _View]:
    """Mark a view as subject to these limits; :func:`init_rate_limits` applies them.

    Flask-Limiter keeps its storage on the ``Limiter`` object, so each app gets its own (see
    :func:`init_rate_limits`) and views only carry the rules.

    Args:
        *rules: The limits.

    Returns:
        A decorator returning the view itself, marked.
    """

    def mark(view: _View) -> _View:
        setattr(view, _RULES_ATTRIBUTE, (*getattr(view, _RULES_ATTRIBUTE, ()), *rules))
        return view

    return mark


def _storage_uri(redis_url: str) -> str:
    # The `limits` library spells a Unix socket URL redis+unix://.
    if redis_url.startswith("unix://"):
        return "redis+" + redis_url
    return redis_url


def init_rate_limits(app: Flask, settings: Settings, redis_client: Redis) -> Limiter:
    """Create the app's limiter and apply the limits of every view marked with :func:`limited`.

    Call it after the blueprints are registered.

    Args:
        app: The application.
        settings: The process settings.
        redis_client: The app's Redis client, whose connection pool (and timeouts) the
            limiter shares: one pool per process, closed with the client.

    Returns:
        The limiter, also kept in ``app.extensions[RATE_LIMITER_EXTENSION]``.
    """
    # One Limiter per app, unlike the other extensions: it keeps its storage (and whether that
    # storage is down) on itself, so a module-level one would be shared by every app built in
    # the process, each init_app overwriting the last.
    limiter = Limiter(
        _user_or_client_key,
        application_limits=[
            f"{settings.rate_limit_requests} per {settings.rate_limit_window} second"
        ],
        application_limits_exempt_when=_not_an_api_request,
        strategy="moving-window",
        storage_uri=_storage_uri(settings.redis_url),
        # flask-limiter types the options as str | int; limits passes them to redis-py, which
        # takes the pool.
        storage_options={"connection_pool": redis_client.connection_pool},  # type: ignore[dict-item]
        in_memory_fallback_enabled=True,
        # Retry-After is set on 429 responses below; the X-RateLimit-* headers would cost a
        # Redis round trip on every response.
        headers_enabled=False,
    )
    limiter.init_app(app)
    for endpoint, view in list(app.view_functions.items()):
        rules: tuple[LimitRule, ...] = getattr(view, _RULES_ATTRIBUTE, ())
        limited: Callable[..., Any] = view
        for rule in rules:
            limited = limiter.shared_limit(
                getattr(settings, rule.setting),
                scope=rule.scope,
                key_func=rule.key,
                deduct_when=rule.counts,
            )(limited)
        if rules:
            app.view_functions[endpoint] = limited
    app.extensions[RATE_LIMITER_EXTENSION] = limiter
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    return limiter


def retry_after_seconds(exc: RateLimitExceeded) -> int:
    """Return the seconds after which a request refused by ``exc`` may succeed (Retry-After)."""
    limiter: Limiter = current_app.extensions[RATE_LIMITER_EXTENSION]
    breached = limiter.current_limit
    try:
        # When the oldest request in the window leaves it (Flask-Limiter's reset_at adds a
        # second of rounding on top).
        reset_time = breached.window.reset_time if breached is not None else None
    except Exception:  # the storage failed after refusing the request: assume a full window
        reset_time = None
    if reset_time is None:
        return exc.limit.limit.get_expiry()
    return max(1, math.ceil(reset_time - time.time()))


def _rate_limited(exc: RateLimitExceeded) -> tuple[Response, int]:
    retry_after = retry_after_seconds(exc)
    response, status = error_response(
        429,
        "rate_limited",
        f"Too many requests (limit: {exc.limit.limit}); retry in {retry_after} seconds.",
        retry_after=retry_after,
    )
    response.headers["Retry-After"] = str(retry_after)
    return response, status
