"""Chat models for the bot: the built-in offline model, OpenAI-compatible providers, the cache.

Nothing here imports Flask: the bot runs the same in a web worker, a CLI or a test.
"""

from webapp.llm.cache import CachedReply, RedisReplyCache, ReplyCache, cache_key
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
    "CachedReply",
    "ChatModelSettings",
    "ChatRunnable",
    "OfflineChatModel",
    "RedisReplyCache",
    "ReplyCache",
    "answered_by",
    "build_chat_model",
    "cache_key",
]
