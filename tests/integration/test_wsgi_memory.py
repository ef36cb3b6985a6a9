"""Each WSGI entry point leaves its app's objects frozen, so forked workers keep sharing them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# Importing an entry point builds its app without connecting to anything, so placeholders do.
ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "DATABASE_URL": "postgresql://user:password@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "SECRET_KEY": "s" * 48,
}


def _after_importing(module: str) -> dict[str, int]:
    # A fresh interpreter: this one's collector state belongs to the test run.
    code = (
        "import gc, importlib, json\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps({'frozen': gc.get_freeze_count(), 'tracked': len(gc.get_objects())}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("module", ["webapp.wsgi.auth", "webapp.wsgi.chat", "webapp.wsgi.admin"])
def test_the_app_built_by_an_entry_point_is_frozen(module):
    counts = _after_importing(module)
    # Everything the import made is out of the collector's reach: a worker's collections do not
    # write to it (and so do not copy its pages out of the master's).
    assert counts["frozen"] > 10_000
    assert counts["tracked"] < counts["frozen"] / 10


def test_importing_the_factory_alone_freezes_nothing():
    # The positive control: freezing is the entry point's doing, not a side effect of importing
    # the app (tests and the CLI build apps that are never forked).
    code = "import gc, webapp.app; print(gc.get_freeze_count())"
    result = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 0
