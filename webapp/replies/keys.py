"""The Redis keys of one reply (its stream, stop flag and lease) and how long they live.

The key names are deployed data: readers on other hosts and releases find replies by them, so
they do not change.
"""

from __future__ import annotations

__all__ = [
    "LEASE_REFRESH_SECONDS",
    "LEASE_TTL_SECONDS",
    "MAX_REPLY_SECONDS",
    "lease_key",
    "stop_key",
    "stream_key",
]

# Longest a reply may take: bounds the life of its stream and stop flag should nothing else.
MAX_REPLY_SECONDS = 24 * 3600
# The live process refreshes its replies' leases this often; a lease outlives a few misses.
LEASE_REFRESH_SECONDS = 10.0
LEASE_TTL_SECONDS = 30


def stream_key(reply_id: int) -> str:
    """Return the Redis key of a reply's event stream."""
    return f"chat:reply:{reply_id}"


def stop_key(reply_id: int) -> str:
    """Return the Redis key of a reply's stop flag (set: the user asked to stop)."""
    return f"chat:reply:{reply_id}:stop"


def lease_key(reply_id: int) -> str:
    """Return the Redis key of a reply's lease (present: a live process generates it)."""
    return f"chat:reply:{reply_id}:lease"
