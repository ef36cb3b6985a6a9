"""The bot of this process: built on first use, then shared by every request and thread."""

from __future__ import annotations

import threading

from flask import Flask

from webapp.bot import Bot

__all__ = ["BOT_EXTENSION", "get_bot"]

BOT_EXTENSION = "bot"
_build_lock = threading.Lock()


def get_bot(app: Flask) -> Bot:
    """Return the app's bot, building it on the first call.

    Building the model and compiling the graph is far too costly to do per request. It is lazy
    rather than done in ``create_app`` so that processes which never chat (the CLI, health
    checks of a just-started worker) do not pay for it, and so that each gunicorn worker builds
    its own after the fork.

    Args:
        app: The chat (or "all") application.

    Returns:
        The process-wide bot.
    """
    bot = app.extensions.get(BOT_EXTENSION)
    if bot is None:
        # Double-checked: gthread workers may receive their first chat requests concurrently.
        with _build_lock:
            bot = app.extensions.get(BOT_EXTENSION)
            if bot is None:
                bot = Bot.from_settings(app.extensions["settings"])
                app.extensions[BOT_EXTENSION] = bot
    return bot
