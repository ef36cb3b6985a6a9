"""Chat service blueprint: conversations, messages and streamed bot replies."""

from webapp.chat.routes import bp

__all__ = ["bp"]
