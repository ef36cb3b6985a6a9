"""The chat page of the chat service, at ``/``: conversations, messages, streamed replies."""

from __future__ import annotations

from webapp.web.pages import page_blueprint, render_page

bp = page_blueprint("chat_pages", __name__)


@bp.get("/")
def index() -> str:
    """Render the chat app (``?c=<id>`` opens a conversation)."""
    return render_page("chat/index.html", title="Chat", script="chat.js")
