"""gunicorn server hooks that keep multiprocess Prometheus metrics correct.

The gunicorn configuration of each service imports them::

    from webapp.gunicorn_hooks import child_exit, on_starting

Both do nothing unless ``PROMETHEUS_MULTIPROC_DIR`` is set. They run in the gunicorn master, so
this module imports neither Flask nor the app: the master stays small and forks no app state.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

__all__ = ["child_exit", "on_starting", "reset_multiproc_dir"]

_MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# gunicorn sets this (the old master's PID) in the environment of a master it re-executes.
_REEXEC_ENV = "GUNICORN_PID"


def reset_multiproc_dir(directory: str | os.PathLike[str]) -> None:
    """Make ``directory`` exist and hold nothing.

    Files left by an earlier run would be added to the new run's counts (and a new worker that
    reuses an old PID would continue an old file), so every start begins empty.

    Args:
        directory: The multiprocess directory.
    """
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def on_starting(server: Any) -> None:
    """Empty the metrics directory before the first worker starts (gunicorn ``on_starting``).

    Not when gunicorn re-executes itself to swap releases: the counts go on.

    Args:
        server: The gunicorn arbiter.
    """
    directory = os.environ.get(_MULTIPROC_DIR_ENV)
    if not directory:
        return
    if os.environ.get(_REEXEC_ENV):
        # A new master started by the running one (SIGUSR2: the zero-downtime release swap).
        # The old workers' files are this service's counts so far: keep them, so counters
        # carry on across an upgrade instead of dropping to zero.
        server.log.info("prometheus multiprocess directory %s kept (re-exec)", directory)
        return
    reset_multiproc_dir(directory)
    server.log.info("prometheus multiprocess directory %s emptied", directory)


def child_exit(server: Any, worker: Any) -> None:
    """Let prometheus-client forget a worker that exited (gunicorn ``child_exit``).

    Counter and histogram files of the dead worker stay, so the totals never go down; only
    its live-gauge files are removed.

    Args:
        server: The gunicorn arbiter.
        worker: The worker that exited.
    """
    if os.environ.get(_MULTIPROC_DIR_ENV):
        multiprocess.mark_process_dead(worker.pid)
