"""gunicorn server hooks of the three services: metrics across workers, and the release swap.

The gunicorn configuration of each service (rendered by the ``app`` role from
``roles/app/templates/etc/chatbot/gunicorn.conf.py.j2``) only passes values; the hooks are
here, where lint, the type checker and the tests see them::

    from webapp.gunicorn_hooks import *  # on_starting, child_exit, when_ready
    pre_exec = start_from_release_link("/opt/chatbot/current")

- ``on_starting`` and ``child_exit`` keep multiprocess Prometheus metrics correct; both do
  nothing unless ``PROMETHEUS_MULTIPROC_DIR`` is set.
- ``pre_exec`` (from :func:`start_from_release_link`) and ``when_ready`` make the zero-downtime
  release switch work (playbooks/upgrade.yml, rollback.yml): SIGUSR2 makes the master start a
  new master that inherits the listening socket; both serve until the old one is sent SIGTERM
  and lets its workers finish their requests. Without these hooks the new master would run the
  old release (gunicorn re-executes the interpreter and directory it started from) and systemd
  would take the old master's exit for the service's end.

They run in the gunicorn master, so this module imports neither Flask nor the app.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn import systemd
from prometheus_client import multiprocess

# What `from webapp.gunicorn_hooks import *` gives a configuration: the hooks that need no value.
__all__ = ["child_exit", "on_starting", "when_ready"]

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


def start_from_release_link(link: str | os.PathLike[str]) -> Callable[[Any], None]:
    """Return a ``pre_exec`` hook that starts the new master from the release ``link`` names.

    Args:
        link: The ``current`` symlink of the app root, resolved when the hook runs (after the
            switch pointed it at the new release).

    Returns:
        The hook: it points gunicorn's re-exec at ``<release>/venv/bin/python`` running
        ``<release>/venv/bin/gunicorn``, in ``<release>``, keeping the other arguments.
    """

    def pre_exec(server: Any) -> None:
        """Start the new master from the release the link points to now."""
        release = os.path.realpath(link)
        python = os.path.join(release, "venv", "bin", "python")
        server.START_CTX[0] = python
        server.START_CTX["args"][:2] = [python, os.path.join(release, "venv", "bin", "gunicorn")]
        server.START_CTX["cwd"] = release

    return pre_exec


def when_ready(server: Any) -> None:
    """Once a master started by SIGUSR2 listens, make it the unit's main process.

    Args:
        server: The gunicorn arbiter; ``master_pid`` is the old master's PID in a master
            started by a re-exec, else 0.
    """
    if server.master_pid:
        systemd.sd_notify(f"MAINPID={os.getpid()}", server.log)
