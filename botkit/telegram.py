"""botkit on your own python-telegram-bot `Application`, beside your handlers:

    async with BotApp(settings=Settings(), bots=[bot]) as botkit_app:
        application = Application.builder().token(TOKEN).build()
        application.add_handler(CommandHandler("order", order))     # yours first
        application.add_handler(botkit.telegram.handler(botkit_app.pipelines["shop"]))

The handler answers every text of a private chat (and what addresses the bot in a
group) with the bot's pipeline, streamed; anything your handlers take first, it
never sees. `botkit serve --channel telegram` runs this same handler.
"""

from __future__ import annotations

from botkit.adapters.telegram import (
    BotIdentity,
    TelegramHandler,
    Timing,
    handler,
    is_addressed,
    to_incoming,
)

__all__ = ["BotIdentity", "TelegramHandler", "Timing", "handler", "is_addressed", "to_incoming"]
