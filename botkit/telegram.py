"""botkit on your own python-telegram-bot `Application`, beside your handlers:

    async with BotApp(settings=Settings(), bots=[bot]) as bots:
        application = Application.builder().token(TOKEN).build()
        application.add_handler(CommandHandler("order", order))     # yours first
        application.add_handler(botkit.telegram.handler(bots.pipelines["shop"]))

The handler answers every text of a private chat (and what addresses the bot in a
group) with the bot's pipeline, streamed; what your handlers take first, it never
sees. `botkit serve --channel telegram` runs this same handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botkit.adapters.telegram import BotIdentity, TelegramHandler, Timing, to_incoming

if TYPE_CHECKING:
    from botkit.pipeline import Pipeline

__all__ = ["BotIdentity", "TelegramHandler", "Timing", "handler", "to_incoming"]


def handler(
    pipeline: Pipeline, *, timing: Timing | None = None, block: bool = False
) -> TelegramHandler:
    """botkit's handler for a bot's pipeline (`BotApp.pipelines[NAME]`): add it after your
    own handlers. `block=False` answers in the Application's tasks, so a slow answer holds
    up none of your handlers; `timing` sets how often a streamed answer is updated."""
    return TelegramHandler(pipeline, timing=timing, block=block)
