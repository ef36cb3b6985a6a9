"""Waiting for an event in a test: for the event itself, bounded far above any real delay.

CI is a busy 2-core machine (load averages of 4-7 were seen): what takes milliseconds on an idle
laptop can take seconds there. So no test sleeps in place of an event, and none bounds an event by
how long it usually takes. A test polls for the event itself (a backend in ``pg_locks``, a row, a
log line, a port answering) and gives up only after ``EVENT_TIMEOUT``: reaching that bound means
the event is not coming, not that the machine was busy. This module is the one place that says how
long that is.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

EVENT_TIMEOUT = 120.0
"""Seconds to wait for an event at most: far above any real delay, even on a loaded machine."""

POLL_SECONDS = 0.02
"""Pause between two looks: short, so a test goes on as soon as the event happened."""


def wait_for(
    predicate: Callable[[], T],
    what: str,
    *,
    timeout: float = EVENT_TIMEOUT,
    abandon: Callable[[], str | None] | None = None,
    interval: float = POLL_SECONDS,
) -> T:
    """Wait until ``predicate()`` returns something truthy; return that value.

    Args:
        predicate: Looks for the event once; called again until it returns a truthy value.
        what: The awaited event, for the failure message ("a backend waiting for the lock").
        timeout: Seconds to wait at most.
        abandon: Called before each look; a non-empty message means the event can no longer
            happen (the server process exited, the thread finished): fail at once with it
            rather than wait out the bound.
        interval: Seconds between two looks.

    Returns:
        The first truthy value ``predicate()`` returned.

    Raises:
        AssertionError: If the event did not happen in time, or ``abandon`` gave up.
    """
    deadline = time.monotonic() + timeout
    while True:
        if abandon is not None and (reason := abandon()):
            msg = f"gave up waiting for {what}: {reason}"
            raise AssertionError(msg)
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            msg = f"no {what} within {timeout:g} s"
            raise AssertionError(msg)
        time.sleep(interval)


def join(thread: threading.Thread, timeout: float = EVENT_TIMEOUT) -> None:
    """Wait until ``thread`` has finished; fail if it is still running after ``timeout``.

    Raises:
        AssertionError: If the thread is still alive (``Thread.join`` alone would not say).
    """
    thread.join(timeout)
    if thread.is_alive():
        msg = f"thread {thread.name} still running after {timeout:g} s"
        raise AssertionError(msg)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop a server process the test started (by its PID only): SIGTERM, then SIGKILL.

    A master stopped this way stops its own workers; after ``timeout`` seconds it is killed.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def listening(port: int) -> bool:
    """Tell whether something accepts TCP connections on ``port`` of 127.0.0.1."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except OSError:
        return False


def answers_health(port: int) -> bool:
    """Tell whether the service on ``port`` of 127.0.0.1 answers ``GET /health`` with 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
