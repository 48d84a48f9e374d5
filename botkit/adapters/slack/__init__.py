"""Slack (slack-bolt, async): botkit's listener for any bolt app (`listener.py`;
`botkit.slack.register`), and the channel `botkit serve` runs, customers talking to a bot
in Slack, on the process's one Slack app (`app.py`: the Events API at `POST /slack/events`
on the shared HTTP server, or Socket Mode when an app-level token is set).

    event → signature checked → SlackApp → the desk's listener, then the channel's
    SlackListener (ignore rules, then the inbox) → ack → a tracked task: pipeline
    → a streaming message, or a placeholder and chat.update
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from botkit.adapters import ServeOptions
from botkit.adapters.slack import feedback
from botkit.adapters.slack.app import EVENTS_PATH, SlackApp
from botkit.adapters.slack.events import to_incoming
from botkit.adapters.slack.listener import (
    COMMAND_FAILED,
    REFUSED,
    THREAD_SECONDS,
    THREADS_ARE_CONVERSATIONS,
    SlackListener,
)
from botkit.errors import ConfigError, Problem
from botkit.stores.base import InboxItem

if TYPE_CHECKING:
    from botkit.app import BotApp
    from botkit.settings import SlackSettings

logger = logging.getLogger(__name__)

__all__ = [
    "COMMAND_FAILED",
    "EVENTS_PATH",
    "REFUSED",
    "THREADS_ARE_CONVERSATIONS",
    "THREAD_SECONDS",
    "SlackApp",
    "SlackChannel",
    "SlackListener",
    "build",
    "to_incoming",
]


def build(app: BotApp, options: ServeOptions) -> SlackChannel:
    return SlackChannel(app)


class SlackChannel:
    """One botkit bot answering customers in a Slack workspace: botkit's listener on the
    process's Slack app, after the Slack desk's (a reply in a desk thread is the desk's)."""

    def __init__(
        self, app: BotApp, *, edit_interval: float = 1.0, shutdown_timeout: float = 10.0
    ) -> None:
        settings = app.settings.slack
        self.name = _served_bot(app, settings)
        self.bots = [self.name]
        self.slack = SlackApp.of(app, purpose="channel")
        self.slack.shutdown_timeout = shutdown_timeout
        self.slack.serving = self  # a Slack desk of the same process runs through this channel
        self.client = self.slack.client
        self.listener = SlackListener(
            app.pipelines[self.name],
            client=self.client,
            spawn=self.slack.spawn,
            edit_interval=edit_interval,
            votes=app.votes,
        )
        self.slack.on_event(self._on_event)
        self.slack.bolt.command("/" + settings.slash_command.lstrip("/"))(self.listener.on_command)
        self.slack.bolt.action(feedback.ACTIONS)(self.listener.on_feedback)

    @property
    def ready(self) -> bool:
        return self.slack.ready

    def routes(self) -> Sequence[BaseRoute]:
        return self.slack.routes()

    async def run(self) -> None:
        """Check the token; in Socket Mode, connect and take events until cancelled."""
        await self.slack.run()

    async def resume(self, item: InboxItem) -> None:
        """A message a dead worker accepted, or a person's message for the customer."""
        await self.listener.resume(item)

    async def aclose(self) -> None:
        """Take no new events, let the replies under way finish (a bounded wait), disconnect."""
        await self.slack.aclose()

    async def _on_event(self, event: dict[str, Any], body: dict[str, Any]) -> bool:
        return await self.listener.on_event(event, body, self.slack.me(body))


def _served_bot(app: BotApp, settings: SlackSettings) -> str:
    names = [bot.name for bot in app.bots]
    if settings.bot is not None:
        if settings.bot not in names:
            message = f"{settings.bot!r} is not one of the bots served ({', '.join(names)})"
            raise ConfigError([Problem("BOTKIT_SLACK_BOT", message)])
        return settings.bot
    if len(names) != 1:
        message = f"one Slack app answers as one bot: name it ({', '.join(names)})"
        raise ConfigError([Problem("BOTKIT_SLACK_BOT", message)])
    return names[0]
