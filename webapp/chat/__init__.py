"""Chat service blueprint: conversations, messages and streamed bot replies."""

from webapp.chat import conversations  # noqa: F401  (registers its routes on bp)
from webapp.chat.routes import bp

__all__ = ["bp"]
