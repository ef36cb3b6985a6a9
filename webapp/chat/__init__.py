"""Chat service blueprint: conversations, messages and streamed bot replies, model choice."""

from webapp.chat import choice, conversations  # noqa: F401  (register their routes on bp)
from webapp.chat.routes import bp

__all__ = ["bp"]
