"""Chat models for the bot: the built-in offline model and OpenAI-compatible providers.

Nothing here imports Flask: the bot runs the same in a web worker, a CLI or a test.
"""

from webapp.llm.factory import (
    BuiltChatModel,
    ChatModelSettings,
    ChatRunnable,
    answered_by,
    build_chat_model,
)
from webapp.llm.offline import OFFLINE_MODEL_NAME, OfflineChatModel

__all__ = [
    "OFFLINE_MODEL_NAME",
    "BuiltChatModel",
    "ChatModelSettings",
    "ChatRunnable",
    "OfflineChatModel",
    "answered_by",
    "build_chat_model",
]
