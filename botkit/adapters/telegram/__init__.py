"""Telegram (python-telegram-bot): botkit's handler for any `Application`, and
the channel `botkit serve` runs, every bot of a running `BotApp` on an Application of its
own, each by long polling or by a webhook route on the shared HTTP server.

    update → to_incoming (incoming.py: private chats, group rules)
    → TelegramHandler (handler.py: the inbox, one conversation at a time)
    → pipeline → DraftWriter, ReplyWriter (reply.py: drafts, streamed edits;
      format.py: HTML, split)
    TelegramBot (bot.py): the channel's Application, polling or webhook, around the handler
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from starlette.routing import BaseRoute

from botkit.adapters import ServeOptions
from botkit.adapters.telegram.bot import TelegramBot
from botkit.adapters.telegram.handler import TelegramHandler, Timing
from botkit.adapters.telegram.incoming import BotIdentity, is_addressed, to_incoming
from botkit.errors import ConfigError, DeliveryError, Problem
from botkit.stores.base import InboxItem

__all__ = [
    "BotIdentity",
    "TelegramChannel",
    "TelegramHandler",
    "Timing",
    "build",
    "is_addressed",
    "to_incoming",
]

if TYPE_CHECKING:
    from botkit.app import BotApp
    from botkit.settings import TelegramSettings

_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def build(app: BotApp, options: ServeOptions) -> TelegramChannel:
    return TelegramChannel(app, webhook_url=options.webhook_url)


def bot_tokens(settings: TelegramSettings, names: Sequence[str]) -> dict[str, str]:
    """Each bot's token: its own from `bot_tokens`, else `bot_token` when it is the only bot."""
    tokens: dict[str, str] = {}
    problems = []
    for name in names:
        token = settings.bot_tokens.get(name) or (settings.bot_token if len(names) == 1 else None)
        if token is None or not token.get_secret_value().strip():
            hint = (
                "set TELEGRAM_BOT_TOKEN"
                if len(names) == 1
                else f"add {name!r} to BOTKIT_TELEGRAM_BOT_TOKENS (JSON: bot name → token)"
            )
            problems.append(Problem("TELEGRAM_BOT_TOKEN", f"bot {name!r} has no token: {hint}"))
        elif token.get_secret_value() in tokens.values():
            message = f"bot {name!r} has the same token as another bot: each needs its own"
            problems.append(Problem("BOTKIT_TELEGRAM_BOT_TOKENS", message))
        else:
            tokens[name] = token.get_secret_value().strip()
    if problems:
        raise ConfigError(problems)
    return tokens


def webhook_urls(url: str, names: Sequence[str]) -> dict[str, str]:
    """Each bot's webhook: `https://host/path` gives `https://host/path/NAME`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        message = f"{url!r} is not a URL such as https://bots.example.com/telegram"
        raise ConfigError([Problem("--webhook", message)])
    path = parts.path.rstrip("/") or "/telegram"
    return {
        name: urlunsplit((parts.scheme, parts.netloc, f"{path}/{name}", "", "")) for name in names
    }


class TelegramChannel:
    """Every bot of a running `BotApp` on Telegram."""

    def __init__(
        self,
        app: BotApp,
        *,
        webhook_url: str | None = None,
        timing: Timing | None = None,
        max_retries: int = 3,
    ) -> None:
        settings = app.settings.telegram
        names = [bot.name for bot in app.bots]
        tokens = bot_tokens(settings, names)
        urls = webhook_urls(webhook_url, names) if webhook_url else {}
        secret = _webhook_secret(settings) if webhook_url else ""
        self._bots = [
            TelegramBot(
                pipeline=app.pipelines[name],
                votes=app.votes,
                token=tokens[name],
                base_url=settings.base_url.rstrip("/"),
                webhook_url=urls.get(name),
                secret=secret,
                timing=timing or Timing(),
                max_retries=max_retries,
            )
            for name in names
        ]

    def routes(self) -> Sequence[BaseRoute]:
        return [bot.route() for bot in self._bots if bot.webhook_url]

    async def run(self) -> None:
        # gather, not a TaskGroup: a bot's ConfigError must reach the CLI as itself.
        await asyncio.gather(*(bot.run() for bot in self._bots))

    async def resume(self, item: InboxItem) -> None:
        """Answer or deliver an inbox item, through the bot it names."""
        name = item.payload["address"]["bot"]
        bot = next((bot for bot in self._bots if bot.name == name), None)
        if bot is None:
            raise DeliveryError(f"bot {name!r} is not served on Telegram here")
        await bot.resume(item)

    async def aclose(self) -> None:
        await asyncio.gather(*(bot.aclose() for bot in self._bots))


def _webhook_secret(settings: TelegramSettings) -> str:
    if settings.webhook_secret is None:
        return secrets.token_urlsafe(32)
    secret = settings.webhook_secret.get_secret_value()
    if not _SECRET.match(secret):
        message = "must be 1–256 characters of A-Z, a-z, 0-9, _ and -"
        raise ConfigError([Problem("BOTKIT_TELEGRAM_WEBHOOK_SECRET", message)])
    return secret
