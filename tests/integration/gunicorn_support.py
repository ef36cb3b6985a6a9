"""Starting a real gunicorn from the checkout, for the tests of what it does as deployed."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"


def start_gunicorn(
    directory: Path, config: str, env: dict[str, str], log: Path, stderr_log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Write ``config`` as ``gunicorn.conf.py`` in ``directory`` and start a master on it.

    Args:
        directory: Where the configuration file goes.
        config: The configuration's text.
        env: The environment (the test settings); the checkout is put on ``PYTHONPATH``.
        log: The file gunicorn's standard output goes to, and its standard error unless
            ``stderr_log`` is given.
        stderr_log: A file of its own for standard error.

    Returns:
        The master process; the caller stops it, by its PID.
    """
    config_file = directory / "gunicorn.conf.py"
    config_file.write_text(config)
    env = {
        **env,
        "PYTHONPATH": str(REPO),
        # The app's general rate limit (per client address) must not turn the tests' requests,
        # all from 127.0.0.1, into 429s.
        "RATE_LIMIT_REQUESTS": "1000000",
    }
    with contextlib.ExitStack() as files:
        out = files.enter_context(log.open("wb"))
        err = (
            subprocess.STDOUT if stderr_log is None else files.enter_context(stderr_log.open("wb"))
        )
        return subprocess.Popen(
            [str(GUNICORN), "--config", str(config_file)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
        )
