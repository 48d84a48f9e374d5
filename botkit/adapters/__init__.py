"""Channel adapters: each turns platform updates into `IncomingMessage`s and posts `Reply`s.

The console adapter serves one terminal user (`botkit chat`). The others are
`Channel`s that `botkit serve` runs side by side: each is built from the
running `BotApp` (its pipelines and store) and may contribute HTTP routes to
the one server they share.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from botkit.messages import IncomingMessage, Reply

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from botkit.app import BotApp

Handler = Callable[[IncomingMessage], Awaitable[Reply | None]]

# name → "module:factory"; a factory is `(app: BotApp, options: ServeOptions) -> Channel`.
CHANNELS = {
    "web": "botkit.adapters.web:build",
    "telegram": "botkit.adapters.telegram:build",
    "slack": "botkit.adapters.slack:build",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    """What `botkit serve` was asked for on its command line."""

    channels: tuple[str, ...] = ("web",)
    host: str = "127.0.0.1"
    port: int = 8080
    webhook_url: str | None = None
    """Telegram: run in webhook mode with this public URL instead of long polling."""


class Channel(Protocol):
    """A channel serving the bots of a running `BotApp` (a desk's serving side, too).

    A channel that can answer from any worker also has `resume(item)` (see
    `botkit.inbox.Resumes`): the inbox hands it the messages a dead worker accepted
    and the messages people write to its customers. It may have a `ready` attribute,
    False while it connects (`/readyz` answers 503 until it is True), and a
    `stopping()` method, called when a stop begins, before the HTTP server waits for
    the requests under way: there it ends requests that never end on their own (the
    web channel's live event streams).
    """

    def routes(self) -> Sequence[BaseRoute]:
        """HTTP endpoints to mount on the shared server (none for a polling-only channel)."""
        ...

    async def run(self) -> None:
        """Background work (polling, Socket Mode) until cancelled; return at once if none."""
        ...

    async def aclose(self) -> None:
        """Take no new work, let in-flight replies finish (a bounded wait), release resources."""
        ...


ChannelFactory = Callable[["BotApp", ServeOptions], Channel]
