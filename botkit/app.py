"""A running botkit process: the shared store and responders, and a pipeline per bot."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

from botkit.home import BotDefinition
from botkit.llm.offline import FaqResponder
from botkit.pipeline import Pipeline
from botkit.settings import Settings
from botkit.stores import Store, open_store


class BotApp:
    """Opens the parts in order and closes them in reverse, even on failure."""

    def __init__(self, *, settings: Settings, bots: Sequence[BotDefinition]) -> None:
        self.settings = settings
        self.bots = list(bots)
        self.pipelines: dict[str, Pipeline] = {}
        self._exit_stack = AsyncExitStack()
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("BotApp is not open: use 'async with BotApp(...)'")
        return self._store

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._store = await stack.enter_async_context(
                await open_store(self.settings.store.url, home=self.settings.home)
            )
            for bot in self.bots:
                self.pipelines[bot.name] = Pipeline(
                    bot=bot, store=self._store, responder=FaqResponder(bot)
                )
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit_stack.aclose()
        self._store = None
