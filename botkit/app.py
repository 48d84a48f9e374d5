"""A running botkit process: the shared store and LLM clients, and a pipeline per bot."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Self

from pydantic import SecretStr

from botkit.home import BotDefinition
from botkit.llm.base import Responder
from botkit.llm.offline import FaqResponder
from botkit.pipeline import Pipeline
from botkit.settings import Settings
from botkit.stores import Store, open_store

if TYPE_CHECKING:
    import httpx

    from botkit.llm.client import CompletionClient


class BotApp:
    """Opens the parts in order and closes them in reverse, even on failure.

    With an LLM configured, every bot asks it through one shared client per API
    (base URL and key), then its fallbacks; without one, bots answer offline from
    their FAQ. `transport` replaces the HTTP transport of every client (tests).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        bots: Sequence[BotDefinition],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.bots = list(bots)
        self.pipelines: dict[str, Pipeline] = {}
        self._transport = transport
        self._exit_stack = AsyncExitStack()
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("BotApp is not open: use 'async with BotApp(...)'")
        return self._store

    def model_of(self, bot: BotDefinition) -> str:
        """The model a bot asks first ("faq" when it answers offline)."""
        if not self.settings.llm_configured:
            return "faq"
        return bot.settings.model or self.settings.llm.model

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._store = await stack.enter_async_context(
                await open_store(self.settings.store.url, home=self.settings.home)
            )
            responders = self._llm_responders(stack) if self.settings.llm_configured else {}
            for bot in self.bots:
                responder = responders.get(bot.name) or FaqResponder(bot)
                self.pipelines[bot.name] = Pipeline(bot=bot, store=self._store, responder=responder)
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

    def _llm_responders(self, stack: AsyncExitStack) -> dict[str, Responder]:
        from botkit.llm.responder import Endpoint, LLMResponder
        from botkit.llm.retry import RetryPolicy
        from botkit.llm.usage import UsageMeter

        llm = self.settings.llm
        clients: dict[tuple[str, str | None], CompletionClient] = {}

        def client(base_url: str, api_key: SecretStr | None) -> CompletionClient:
            key = (base_url.rstrip("/"), api_key.get_secret_value() if api_key else None)
            if key not in clients:
                clients[key] = self._client(base_url, api_key)
                stack.push_async_callback(clients[key].aclose)
            return clients[key]

        meter = UsageMeter(self.store)
        stack.push_async_callback(meter.aclose)
        retry = RetryPolicy(
            max_retries=llm.max_retries, deadline=llm.deadline, initial_backoff=llm.retry_backoff
        )
        responders: dict[str, Responder] = {}
        for bot in self.bots:
            primary = Endpoint(
                client(self.settings.llm_base_url, self.settings.llm_api_key),
                bot.settings.model or llm.model,
            )
            fallbacks = [
                Endpoint(client(f.base_url, f.api_key), f.model) for f in bot.settings.fallbacks
            ]
            responders[bot.name] = LLMResponder(
                bot=bot, endpoints=[primary, *fallbacks], retry=retry, meter=meter
            )
        return responders

    def _client(self, base_url: str, api_key: SecretStr | None) -> CompletionClient:
        from botkit.llm.client import CompletionClient, Timeouts
        from botkit.llm.ratelimit import RateLimit

        llm = self.settings.llm
        rate_limit = None
        if llm.requests_per_minute or llm.tokens_per_minute:
            rate_limit = RateLimit(
                requests_per_minute=llm.requests_per_minute,
                tokens_per_minute=llm.tokens_per_minute,
            )
        return CompletionClient(
            base_url=base_url,
            api_key=api_key,
            timeouts=Timeouts(llm.timeout_connect, llm.timeout_read, llm.timeout_total),
            headers=llm.headers,
            transport=self._transport,
            max_connections=llm.max_connections,
            rate_limit=rate_limit,
        )
