"""botkit inside your own python-telegram-bot application.

Your handlers come first: an /order command whose buttons you answer yourself, and a
/feedback conversation. botkit's handler comes last and answers every other message
(in groups, those that mention the bot or reply to it), from the bot's FAQ or its LLM.

    TELEGRAM_BOT_TOKEN=123456:ABC… python examples/telegram_app.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

import botkit.telegram
from botkit import BotApp, BotDefinition, Pipeline, Settings

SHOP = BotDefinition.from_values(
    "shop",
    system="You are the support assistant of a shop that sells boxes. Be brief.",
    faq={
        "hours": {
            "question": "When are you open?",
            "questions": ["opening hours"],
            "answer": "We are open Monday to Friday, 9:00 to 17:00.",
        },
        "refund": {
            "question": "Can I get a refund?",
            "questions": ["I want my money back"],
            "answer": "Refunds are possible within 30 days of purchase.",
        },
    },
)

FEEDBACK = 0


async def order(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    sizes = [InlineKeyboardButton(s, callback_data=f"size:{s.lower()}") for s in ("Small", "Large")]
    assert update.message is not None
    await update.message.reply_text("Which size?", reply_markup=InlineKeyboardMarkup([sizes]))


async def size_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer()
    await query.edit_message_text(f"Ordered: one {query.data.removeprefix('size:')} box.")


async def ask_feedback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.message is not None
    await update.message.reply_text("What should we improve?")
    return FEEDBACK


async def feedback_given(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.message is not None
    await update.message.reply_text("Thank you, we read every word.")
    return ConversationHandler.END


def build_application(
    token: str, pipeline: Pipeline, *, base_url: str = "https://api.telegram.org"
) -> Application[Any, Any, Any, Any, Any, Any]:
    """Your application, with botkit's handler after your own."""
    application = Application.builder().token(token).base_url(f"{base_url}/bot").build()
    application.add_handler(CommandHandler("order", order))
    application.add_handler(CallbackQueryHandler(size_chosen, pattern=r"^size:"))
    application.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("feedback", ask_feedback)],
            states={FEEDBACK: [MessageHandler(filters.TEXT & ~filters.COMMAND, feedback_given)]},
            fallbacks=[],
        )
    )
    application.add_handler(botkit.telegram.handler(pipeline))  # last: it takes any text
    return application


async def main() -> None:
    # from_environment: an LLM when BOTKIT_LLM_API_KEY or OPENAI_API_KEY is set, else the FAQ.
    settings = Settings.from_environment()
    async with BotApp(settings=settings, bots=[SHOP]) as bots:
        application = build_application(os.environ["TELEGRAM_BOT_TOKEN"], bots.pipelines["shop"])
        async with application:
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling()
            try:
                await asyncio.Event().wait()  # until Ctrl-C
            finally:
                await application.updater.stop()
                await application.stop()  # waits for the answers under way


if __name__ == "__main__":
    asyncio.run(main())
