"""The OpenAI-compatible API (``/v1``), served by the chat service: models and chat completions."""

from webapp.openai_api.routes import bp

__all__ = ["bp"]
