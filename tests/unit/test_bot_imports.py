"""The bot, the model layer, the errors and the webhook worker never import Flask (they run
outside web workers too)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.waiting import EVENT_TIMEOUT

# Runs in a fresh interpreter so modules other tests imported cannot hide an import. It goes
# through the real `webapp` package on purpose: its __init__ must stay lazy about the web app.
PROBE = textwrap.dedent(
    """
    import sys

    import webapp.bot
    import webapp.bot.graph
    import webapp.bot.nodes
    import webapp.errors
    import webapp.llm
    import webapp.llm.factory
    import webapp.llm.offline
    import webapp.replies.keys
    import webapp.webhooks.worker

    print(sorted(name for name in sys.modules if name == "flask" or name.startswith("flask_")))
    """
)


def test_bot_llm_errors_and_webhook_worker_import_no_flask() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=EVENT_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
