"""The session denylist's logic, against a stand-in for Redis (no I/O)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from webapp.services.sessions import (
    RefreshTokenReusedError,
    SessionStore,
    SessionStoreUnavailableError,
    new_session_id,
)

ACCESS = {"type": "access", "jti": "a1", "sid": "s1", "exp": 2_000_000_000}
REFRESH = {"type": "refresh", "jti": "r1", "sid": "s1", "exp": 2_000_000_000}


class FakeRedis:
    """The three commands the store uses, on a dict; can be switched off like a dead server."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ttl: dict[str, int] = {}
        self.down = False
        self.calls = 0

    def _call(self) -> None:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("Connection refused")

    def mget(self, *keys: str) -> list[bytes | None]:
        self._call()
        return [self.data.get(key) for key in keys]

    def set(self, key: str, value: bytes, *, nx: bool = False, **expiry: Any) -> bool:
        self._call()
        if nx and key in self.data:
            return False
        self.data[key] = value
        self.ttl[key] = expiry.get("ex") or expiry["exat"]
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(redis, clock) -> SessionStore:
    return SessionStore(
        redis,  # type: ignore[arg-type]
        max_token_lifetime=timedelta(days=7),
        retry_after_failure=2.0,
        clock=clock,
    )


def test_fresh_tokens_are_not_revoked(store):
    assert not store.is_revoked(ACCESS)
    assert not store.is_revoked(REFRESH)


@pytest.mark.parametrize("claim", ["sid", "jti"])
def test_a_token_without_session_or_id_is_revoked_without_asking_redis(store, redis, claim):
    token = {k: v for k, v in ACCESS.items() if k != claim}
    assert store.is_revoked(token)
    assert redis.calls == 0


def test_revoking_a_session_revokes_all_its_tokens_for_the_refresh_lifetime(store, redis):
    store.revoke_session("s1")
    assert store.is_revoked(ACCESS)
    assert store.is_revoked(REFRESH)
    assert not store.is_revoked(ACCESS | {"sid": "s2"})
    assert redis.ttl == {"auth:revoked:session:s1": 7 * 86400}


def test_rotation_spends_the_token_until_it_expires(store, redis):
    store.rotate(REFRESH)
    assert redis.ttl["auth:revoked:token:r1"] == REFRESH["exp"]
    assert not store.is_revoked(ACCESS)


def test_presenting_a_spent_refresh_token_revokes_its_session(store):
    store.rotate(REFRESH)
    assert store.is_revoked(REFRESH)
    # The session's other tokens (the ones the rotation issued) die with it.
    assert store.is_revoked(ACCESS | {"jti": "a2"})


def test_rotating_twice_is_reuse(store):
    store.rotate(REFRESH)
    with pytest.raises(RefreshTokenReusedError):
        store.rotate(REFRESH)
    assert store.is_revoked(ACCESS)


def test_redis_failure_is_reported_then_not_retried_for_a_moment(store, redis, clock):
    redis.down = True
    with pytest.raises(SessionStoreUnavailableError):
        store.is_revoked(ACCESS)
    assert redis.calls == 1

    clock.now += 1.9
    redis.down = False
    with pytest.raises(SessionStoreUnavailableError):
        store.revoke_session("s1")
    assert redis.calls == 1  # failed fast, Redis not asked

    clock.now += 0.2
    store.revoke_session("s1")
    assert redis.calls == 2
    assert store.is_revoked(ACCESS)


def test_session_ids_are_random_and_long():
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) >= 22 for i in ids)
