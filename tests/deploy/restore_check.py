#!/usr/bin/env python3
"""Write conversations through the API, and later find every one of them again.

Used around a backup and restore (molecule/ops): ``create`` registers a user, creates
conversations with messages and replies, and saves what it wrote to a state file; after the
database has been dropped and restored, ``verify`` logs in as that user and checks that every
conversation and every message (id, role, content, order) is there again::

    python tests/deploy/restore_check.py create --base-url https://10.231.3.11 --insecure \\
        --state /tmp/written.json
    python tests/deploy/restore_check.py verify --base-url https://10.231.3.11 --insecure \\
        --state /tmp/written.json

The state file holds the test user's password: keep it in a private directory (it is created
with mode 0600). Exit status: 0 when everything checked out, 1 when not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from smoke import ApiSession, parse_client_args

USER_AGENT = "chatbot-restore-check/1"


class CheckFailedError(Exception):
    """The system did not hold or answer what it should."""


class Api(ApiSession):
    """A small JSON API client for one deployment."""

    def __init__(self, base_url: str, *, insecure: bool, timeout: float) -> None:
        """Prepare a session; nothing is sent yet."""
        super().__init__(base_url, insecure=insecure, timeout=timeout, user_agent=USER_AGENT)

    def call(self, method: str, path: str, expect: int, body: Any = None) -> Any:
        """Send one request; return the decoded body, or raise CheckFailedError."""
        return self.send(method, path, expect, body, failure=CheckFailedError).json()

    def login(self, email: str, password: str) -> None:
        """Log in and keep the access token for the following calls."""
        body = self.call("POST", "/api/v1/auth/login", 200, {"email": email, "password": password})
        self.token = body["access_token"]


def messages_of(api: Api, conversation_id: Any) -> list[dict[str, Any]]:
    """Return the stored messages of a conversation as (id, role, content) records."""
    body = api.call("GET", f"/api/v1/chat/conversations/{conversation_id}", 200)
    return [
        {"id": m["id"], "role": m["role"], "content": m["content"]}
        for m in body["conversation"]["messages"]
    ]


def create(api: Api, state: Path, conversations: int, messages: int) -> str:
    """Write conversations and messages; save what was written to the state file."""
    email = f"restore-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(18)
    api.call(
        "POST",
        "/api/v1/auth/register",
        201,
        {"email": email, "password": password, "display_name": "Restore Check"},
    )
    api.login(email, password)
    written = []
    for number in range(conversations):
        title = f"Restore check {number} {secrets.token_hex(4)}"
        conversation = api.call("POST", "/api/v1/chat/conversations", 201, {"title": title})
        conversation_id = conversation["conversation"]["id"]
        for turn in range(messages):
            # JSON mode waits for the whole reply: both messages are stored when it answers.
            api.call(
                "POST",
                f"/api/v1/chat/conversations/{conversation_id}/messages",
                201,
                {"content": f"Message {turn} of conversation {number}: {secrets.token_hex(8)}"},
            )
        written.append(
            {"id": conversation_id, "title": title, "messages": messages_of(api, conversation_id)}
        )
    descriptor = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"email": email, "password": password, "conversations": written}, file)
    total = sum(len(c["messages"]) for c in written)
    return f"wrote {len(written)} conversations with {total} messages as {email}"


def verify(api: Api, state: Path) -> str:
    """Check that every conversation and message in the state file is stored again."""
    saved = json.loads(state.read_text(encoding="utf-8"))
    api.login(saved["email"], saved["password"])
    problems = []
    for conversation in saved["conversations"]:
        try:
            stored = messages_of(api, conversation["id"])
        except CheckFailedError as exc:
            problems.append(f"conversation {conversation['id']}: {exc}")
            continue
        if stored != conversation["messages"]:
            problems.append(
                f"conversation {conversation['id']}: {len(stored)} messages stored, "
                f"{len(conversation['messages'])} written, or their content differs"
            )
    listed = api.call("GET", "/api/v1/chat/conversations?limit=100", 200)
    listed_ids = {c["id"] for c in listed["conversations"]}
    missing = [c["id"] for c in saved["conversations"] if c["id"] not in listed_ids]
    if missing:
        problems.append(f"conversations {missing} are not in the user's list")
    if problems:
        raise CheckFailedError("; ".join(problems))
    total = sum(len(c["messages"]) for c in saved["conversations"])
    return f"found all {len(saved['conversations'])} conversations and {total} messages"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["create", "verify"])
    parser.add_argument("--base-url", required=True, help="HTTPS URL of nginx")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed certificate")
    parser.add_argument("--state", required=True, type=Path, help="what create wrote (JSON)")
    parser.add_argument("--conversations", type=int, default=5, help="conversations to create")
    parser.add_argument("--messages", type=int, default=2, help="messages per conversation")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parse_client_args(parser, argv)
    if args.conversations < 1 or args.messages < 1:
        parser.error("--conversations and --messages must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the action; print one line; return the exit status."""
    args = parse_args(argv)
    api = Api(args.base_url, insecure=args.insecure, timeout=args.timeout)
    try:
        if args.action == "create":
            result = create(api, args.state, args.conversations, args.messages)
        else:
            result = verify(api, args.state)
    except (CheckFailedError, KeyError, ValueError) as exc:
        print(f"FAIL {args.action}: {exc}", flush=True)
        return 1
    print(f"PASS {args.action}: {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
