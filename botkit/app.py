"""A running botkit process: the shared store and LLM clients, the handoffs and their desks,
and a pipeline per bot."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from pydantic import SecretStr

from botkit.feedback import Votes
from botkit.handoff import Desk, Handoffs
from botkit.home import BotDefinition
from botkit.llm.base import Responder
from botkit.llm.offline import FaqResponder
from botkit.metrics import ReplyMetrics
from botkit.outcomes import OutcomeRecorder
from botkit.pipeline import Pipeline
from botkit.settings import Settings
from botkit.stores import Store, open_store_as

if TYPE_CHECKING:
    import httpx

    from botkit.llm.client import CompletionClient


class BotApp:
    """Opens the parts in order and closes them in reverse, even on failure.

    With an LLM configured, every bot asks it through one shared client per API
    (base URL and key), then its fallbacks; without one, bots answer offline from
    their FAQ. Bots with a `[handoff]` table hand conversations to their desk.
    `transport` replaces the HTTP transport of every LLM client, and `desks` the
    desk of the bots named (tests).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        bots: Sequence[BotDefinition],
        transport: httpx.AsyncBaseTransport | None = None,
        desks: Mapping[str, Desk] | None = None,
    ) -> None:
        self.settings = settings
        self.bots = list(bots)
        self.pipelines: dict[str, Pipeline] = {}
        self.metrics = ReplyMetrics()
        self.shared: dict[str, Any] = {}
        """Parts that channels and desks of this process share (one Slack app, say)."""
        self._transport = transport
        self._given_desks = dict(desks or {})
        self._exit_stack = AsyncExitStack()
        self._store: Store | None = None
        self._handoffs: Handoffs | None = None
        self._outcomes: OutcomeRecorder | None = None
        self._votes: Votes | None = None
        self._responder: Callable[[BotDefinition], Responder] = FaqResponder

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("BotApp is not open: use 'async with BotApp(...)'")
        return self._store

    @property
    def handoffs(self) -> Handoffs:
        if self._handoffs is None:
            raise RuntimeError("BotApp is not open: use 'async with BotApp(...)'")
        return self._handoffs

    @property
    def outcomes(self) -> OutcomeRecorder:
        """What records the outcome of every message (`flush` it before reading them)."""
        if self._outcomes is None:
            raise RuntimeError("BotApp is not open: use 'async with BotApp(...)'")
        return self._outcomes

    @property
    def votes(self) -> Votes:
        """Customers' votes on the answers (the channels' feedback buttons, the API)."""
        if self._votes is None:
            raise RuntimeError("BotApp is not open: use 'async with BotApp(...)'")
        return self._votes

    def model_of(self, bot: BotDefinition) -> str:
        """The model a bot asks first ("faq" when it answers offline)."""
        if not self.settings.llm_configured:
            return "faq"
        return bot.settings.model or self.settings.llm.model

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._store = await stack.enter_async_context(
                await open_store_as(self.settings.store, home=self.settings.home)
            )
            self._handoffs = Handoffs(
                store=self._store, bots=self.bots, desks=await self._desks(stack)
            )
            if self.settings.llm_configured:
                self._responder = self._llm_responders(stack)
            for bot in self.bots:
                self.pipelines[bot.name] = Pipeline(
                    bot=bot,
                    store=self._store,
                    responder=self._responder(bot),
                    handoffs=self._handoffs,
                )
            self.metrics.attach(self.pipelines.values(), self._handoffs)
            self._outcomes = OutcomeRecorder(self._store, prices=self.settings.llm.prices)
            stack.push_async_callback(self._outcomes.aclose)
            for pipeline in self.pipelines.values():
                pipeline.listeners.append(self._outcomes.observe)
            self._votes = Votes(self._store, self.pipelines)
            self._exit_stack = stack.pop_all()
        return self

    def reload(self, bot: BotDefinition) -> None:
        """Serve a new definition of a served bot (its files changed) from its next message
        on, everywhere it is used; messages under way finish with the one they started
        with. Its desk cannot change (see `Handoffs.replace_bot`)."""
        index = next((i for i, b in enumerate(self.bots) if b.name == bot.name), None)
        if index is None:
            raise ValueError(f"bot {bot.name!r} is not served by this process")
        self.handoffs.replace_bot(bot)
        self.bots[index] = bot
        self.pipelines[bot.name].replace_bot(bot, self._responder(bot))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit_stack.aclose()
        self._store = None
        self._handoffs = None
        self._outcomes = None
        self._votes = None

    async def _desks(self, stack: AsyncExitStack) -> dict[str, Desk]:
        """Each bot's desk: one per kind of desk, shared by the bots that use it."""
        from botkit.desks import load_desk

        built: dict[str, Desk] = {}
        desks: dict[str, Desk] = {}
        for bot in self.bots:
            if bot.settings.handoff is None:
                continue
            if bot.name in self._given_desks:
                desks[bot.name] = self._given_desks[bot.name]
                continue
            kind = bot.settings.handoff.desk
            if kind not in built:
                desk = load_desk(kind).desk(self)
                if (close := getattr(desk, "aclose", None)) is not None:
                    stack.push_async_callback(close)
                built[kind] = desk
            desks[bot.name] = built[kind]
        return desks

    def _llm_responders(self, stack: AsyncExitStack) -> Callable[[BotDefinition], Responder]:
        """What makes each bot's LLM responder: at start, and again when a bot is reloaded
        (a new model or fallback is then live; a new API gets its client on first use)."""
        from botkit.llm.responder import Endpoint, LLMResponder
        from botkit.llm.retry import RetryPolicy
        from botkit.llm.usage import UsageMeter

        llm = self.settings.llm
        clients: dict[tuple[str, str | None], CompletionClient] = {}

        def client(
            base_url: str, api_key: SecretStr | None, budget: tuple[int | None, int | None]
        ) -> CompletionClient:
            """One client per API; its budgets are those of the first endpoint naming it."""
            key = (base_url.rstrip("/"), api_key.get_secret_value() if api_key else None)
            if key not in clients:
                clients[key] = self._client(base_url, api_key, budget)
            return clients[key]

        async def close_clients() -> None:  # those made by reloads too
            async with AsyncExitStack() as closing:
                for made in clients.values():
                    closing.push_async_callback(made.aclose)

        meter = UsageMeter(self.store)
        stack.push_async_callback(meter.aclose)
        stack.push_async_callback(close_clients)
        retry = RetryPolicy(
            max_retries=llm.max_retries, deadline=llm.deadline, initial_backoff=llm.retry_backoff
        )

        def responder(bot: BotDefinition) -> Responder:
            budget = (llm.requests_per_minute, llm.tokens_per_minute)
            primary = Endpoint(
                client(self.settings.llm_base_url, self.settings.llm_api_key, budget),
                bot.settings.model or llm.model,
            )
            fallbacks = [
                Endpoint(
                    client(f.base_url, f.api_key, (f.requests_per_minute, f.tokens_per_minute)),
                    f.model,
                )
                for f in bot.settings.fallbacks
            ]
            return LLMResponder(bot=bot, endpoints=[primary, *fallbacks], retry=retry, meter=meter)

        return responder

    def _client(
        self, base_url: str, api_key: SecretStr | None, budget: tuple[int | None, int | None]
    ) -> CompletionClient:
        from botkit.llm.client import CompletionClient, Timeouts
        from botkit.llm.ratelimit import RateLimit

        llm = self.settings.llm
        rate_limit = None
        requests_per_minute, tokens_per_minute = budget
        if requests_per_minute or tokens_per_minute:
            # Shared by every worker on the store, per API and key (never the key itself).
            secret = api_key.get_secret_value() if api_key else ""
            who = hashlib.sha256(secret.encode()).hexdigest()[:12]
            rate_limit = RateLimit(
                self.store,
                key=f"{base_url.rstrip('/')}#{who}",
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
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
