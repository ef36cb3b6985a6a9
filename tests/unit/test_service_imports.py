"""The auth and admin services never load the model stack (LangChain, LangGraph, openai).

They never chat; the model stack is most of the chat service's memory (issue 13). The admin
service reads the model catalogue, which must stay importable without it.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import textwrap

import pytest

from tests.waiting import EVENT_TIMEOUT

# A fresh interpreter: modules other tests imported cannot hide an import. Building the app
# connects to nothing (the database and Redis are reached on first use).
PROBE = textwrap.dedent(
    """
    import sys

    from webapp.app import create_app
    from webapp.settings import Settings

    create_app(sys.argv[1], Settings.from_env({
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "SECRET_KEY": sys.argv[2],
    }))
    heavy = ("langchain", "langgraph", "openai")
    print(sorted({name.split(".")[0] for name in sys.modules if name.startswith(heavy)}))
    """
)


def _heavy_modules(service: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, service, secrets.token_urlsafe(48)],
        capture_output=True,
        text=True,
        timeout=EVENT_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("service", ["auth", "admin"])
def test_a_service_that_never_chats_loads_no_model_stack(service: str) -> None:
    assert _heavy_modules(service) == "[]"


def test_the_probe_finds_the_model_stack_in_the_chat_service() -> None:
    # The check above can fail: the same probe sees what the chat service loads.
    assert "langchain_core" in _heavy_modules("chat")
