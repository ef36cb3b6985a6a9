"""The chat service's gunicorn worker: gunicorn's gevent worker that stops as promptly as gthread.

Configured as ``worker_class = "webapp.gunicorn_gevent.GeventWorker"`` (roles/app renders it for
a service whose ``worker_class`` is ``gevent``). gunicorn imports this module in the master to
find the class, before any fork and before gevent patches anything (gunicorn's worker patches
the standard library in each worker, then imports the app), so it imports neither Flask nor the
app.

What it changes: gunicorn's gevent worker keeps a kept-alive connection open after a response
even while it stops, and waits for the next request on it for ``keepalive`` seconds (75). A
stopping worker (SIGTERM from systemd, or the old master of a release switch) therefore lived
until every client or nginx upstream connection it had ever served went quiet, up to
``graceful_timeout``. gthread closes idle connections when it stops; so does this worker: after
the response in progress (a reply stream runs to its end), and at once for a connection that
waits for its next request.
"""

from __future__ import annotations

from types import FrameType, TracebackType
from typing import Any

import gevent
from gunicorn.workers import ggevent

__all__ = ["GeventWorker"]

# Seconds a connection accepted while the worker stops may take to send its request.
STOPPING_IDLE_SECONDS = 1.0


class GeventWorker(ggevent.GeventWorker):
    """gunicorn's gevent worker; a stopping worker closes connections between requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the worker (in the master, before the fork)."""
        super().__init__(*args, **kwargs)
        # The greenlets waiting for a kept-alive connection's next request, with their timeout.
        self._idle: dict[gevent.Greenlet, gevent.Timeout] = {}

    # The stubs say None; gunicorn uses the value as a context manager.
    def timeout_ctx(self) -> _IdleWait:  # type: ignore[override]
        """Bound the wait for a connection's next request (gunicorn's keep-alive loop)."""
        return _IdleWait(self)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        """Answer one request; close the connection after it if the worker is stopping."""
        handled = super().handle_request(listener_name, req, sock, addr)
        if not self.alive:
            # gunicorn's loop over a connection's requests ends on StopIteration and closes it.
            raise StopIteration
        return handled

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Stop gracefully (SIGTERM): end the waits for a next request, let responses finish."""
        super().handle_exit(sig, frame)
        # Out of the signal handler: greenlets are switched by the hub, not in a handler.
        gevent.spawn(self._end_idle_waits)

    def _end_idle_waits(self) -> None:
        for greenlet, timeout in list(self._idle.items()):
            # The wait's own timeout, raised now: the keep-alive loop takes it for an idle
            # client and closes the connection.
            greenlet.kill(timeout, block=False)


class _IdleWait:
    """The wait for a connection's next request: ``keepalive`` seconds, ended early on stop."""

    def __init__(self, worker: GeventWorker) -> None:
        self._worker = worker
        seconds = worker.cfg.keepalive if worker.alive else STOPPING_IDLE_SECONDS
        # exception=False: when it expires, the with block ends quietly with no request read.
        self._timeout = gevent.Timeout(seconds, False)

    def __enter__(self) -> None:
        self._timeout.start()
        self._worker._idle[gevent.getcurrent()] = self._timeout

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self._worker._idle.pop(gevent.getcurrent(), None)
        return bool(self._timeout.__exit__(exc_type, exc, traceback))
