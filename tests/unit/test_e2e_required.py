"""``E2E_REQUIRED=1``: a browser suite that could not run fails instead of passing as skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_e2e(*args: str, required: bool) -> subprocess.CompletedProcess[str]:
    """Run tests/e2e with no deployed site (every test skips), as the deployment test would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2E_")}
    if required:
        env["E2E_REQUIRED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_skipped_browser_suite_fails_when_required() -> None:
    result = run_e2e(required=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "E2E_REQUIRED=1: the browser suite did not fully run" in result.stdout
    assert "E2E_BASE_URL is not set" in result.stdout
    assert "no browser test ran and passed" in result.stdout


def test_a_run_with_no_test_fails_when_required() -> None:
    result = run_e2e("-k", "no_test_has_this_name", required=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no browser test ran and passed" in result.stdout


def test_skipping_is_allowed_when_not_required() -> None:
    # A developer without a deployed system may still run the suite (and see it skip).
    result = run_e2e(required=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout
