"""How processes connect to PostgreSQL and Redis: the connect timeout and Redis client pools.

Flask-free: the web services, the chat runtime's stream pools and the webhook worker all use it.
"""

from __future__ import annotations

import redis

__all__ = ["CONNECT_TIMEOUT", "pooled_redis"]

# Seconds before connecting to PostgreSQL or Redis is given up: a dead dependency must turn a
# readiness probe into a 503 quickly, not hang it.
CONNECT_TIMEOUT = 5


def pooled_redis(url: str, *, max_connections: int, socket_timeout: float) -> redis.Redis:
    """Return a Redis client on a blocking pool of at most ``max_connections`` connections.

    With more threads than connections, a command waits (up to the connect timeout) for a free
    connection instead of failing with "Too many connections" as redis-py's default pool does.

    Args:
        url: The Redis URL.
        max_connections: Size of the pool.
        socket_timeout: Seconds a command may take (longer for blocking stream reads).

    Returns:
        The client; closing it leaves the pool to ``client.connection_pool.disconnect()``.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=CONNECT_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)
