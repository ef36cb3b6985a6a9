"""Each WSGI entry point loads only what its service needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# Loaded only by the chat service: the bot and its LangChain/LangGraph/OpenAI stack.
CHAT_ONLY = ("webapp.bot", "webapp.llm", "webapp.services.chat", "langchain", "langgraph", "openai")

# Importing an entry point builds its app without connecting to anything, so placeholders do.
ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "DATABASE_URL": "postgresql://user:password@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "SECRET_KEY": "s" * 48,
}


def _modules_after_importing(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"app = importlib.import_module({module!r}).app\n"
        "service = app.config['SERVICE_NAME']\n"
        "print(json.dumps({'service': service, 'modules': sorted(sys.modules)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["service"] == module.rsplit(".", 1)[1]
    return loaded["modules"]


def _chat_only(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(f"{p}.") for p in CHAT_ONLY)]


@pytest.mark.parametrize("module", ["webapp.wsgi.auth", "webapp.wsgi.admin"])
def test_auth_and_admin_processes_never_import_the_bot(module):
    assert _chat_only(_modules_after_importing(module)) == []


def test_chat_process_imports_the_bot():
    # The positive control: the check above would notice the bot if it were loaded.
    loaded = _chat_only(_modules_after_importing("webapp.wsgi.chat"))
    assert "webapp.bot" in loaded
    assert "langgraph" in loaded
