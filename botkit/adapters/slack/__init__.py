"""The Slack channel (slack-bolt, async): the Events API at `POST /slack/events` on the shared
HTTP server, or Socket Mode when an app-level token is set.

    request → signature checked here → bolt acks at once → on_event (ignore rules)
    → a tracked task: claim the message once → placeholder → pipeline → chat.update

Slack re-delivers an event it thinks went unanswered, and sends both `app_mention`
and `message` for one mention: both are the same message (channel + ts), claimed
once in the store, so every worker sharing it answers each message exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import (
    to_async_bolt_request,
    to_starlette_response,
)
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from botkit.adapters import ServeOptions
from botkit.adapters.slack.events import (
    CHANNEL,
    BotIdentity,
    destination,
    is_addressed,
    is_direct,
    message_key,
    parse_request,
    read_body,
    signature_problem,
    thread_key,
    to_incoming,
)
from botkit.adapters.slack.format import to_mrkdwn
from botkit.adapters.slack.reply import RateLimitRetry, ReplyWriter
from botkit.adapters.streaming import stream_reply
from botkit.errors import ConfigError, Problem
from botkit.messages import IncomingMessage

if TYPE_CHECKING:
    from pydantic import SecretStr

    from botkit.app import BotApp
    from botkit.settings import SlackSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["SlackChannel", "build", "to_incoming"]

EVENTS_PATH = "/slack/events"
SEEN_SECONDS = 3600.0
"""How long an answered message is remembered; Slack's retries come within minutes."""
THREAD_SECONDS = 7 * 24 * 3600.0
"""How long the bot keeps answering a thread it took part in without a new mention."""
COMMAND_FAILED = "Sorry, that did not work. Please try again."
THREADS_ARE_CONVERSATIONS = (
    "In channels each thread is its own conversation: start a new thread to start fresh."
)
_UNAUTHORIZED = {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}


def build(app: BotApp, options: ServeOptions) -> SlackChannel:
    return SlackChannel(app)


class SlackChannel:
    """One botkit bot in a Slack workspace, as one Slack app."""

    def __init__(
        self, app: BotApp, *, edit_interval: float = 1.0, shutdown_timeout: float = 10.0
    ) -> None:
        settings = app.settings.slack
        self.name = _served_bot(app, settings)
        self.bots = [self.name]
        self._pipeline = app.pipelines[self.name]
        self._store = app.store
        self._edit_interval = edit_interval
        self._shutdown_timeout = shutdown_timeout
        token = _required(settings.bot_token, "SLACK_BOT_TOKEN", "the bot's xoxb- token")
        app_token = settings.app_token.get_secret_value() if settings.app_token else None
        secret = None
        if app_token is None:
            secret = _required(
                settings.signing_secret,
                "SLACK_SIGNING_SECRET",
                "or SLACK_APP_TOKEN for Socket Mode",
            )
        self._verifier = SignatureVerifier(secret) if secret else None
        # Built from the token, not handed a client: bolt warns when given both (and it reads
        # SLACK_BOT_TOKEN itself). Its client is then pointed at api_url.
        self._bolt = AsyncApp(
            name=f"botkit-{self.name}",
            token=token,
            signing_secret=secret or "",
            request_verification_enabled=False,  # done in _events, before any parsing
            process_before_response=False,  # ack first; listeners run after the response
            logger=logging.getLogger("slack_bolt"),
        )
        self.client = self._bolt.client
        self.client.base_url = settings.api_url.rstrip("/") + "/"
        self._session = aiohttp.ClientSession()  # one connection pool for every Web API call
        self.client.session = self._session
        # Not 5xx: a chat.postMessage that failed on Slack's side may still have posted.
        self.client.retry_handlers = [
            AsyncConnectionErrorRetryHandler(),
            RateLimitRetry(max_retry_count=5),  # waits Retry-After each time
        ]
        self._bolt.event(re.compile(".*"))(self._on_event)
        self._bolt.command("/" + settings.slash_command.lstrip("/"))(self._on_command)
        self._socket = (
            AsyncSocketModeHandler(self._bolt, app_token, web_client=self.client)
            if app_token
            else None
        )
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closing = False

    def routes(self) -> Sequence[BaseRoute]:
        return [] if self._socket else [Route(EVENTS_PATH, self._events, methods=["POST"])]

    async def run(self) -> None:
        """Check the token; in Socket Mode, connect and take events until cancelled."""
        me = await self._until_done(self.client.auth_test, "SLACK_BOT_TOKEN")
        how = "Socket Mode" if self._socket else f"the Events API at {EVENTS_PATH}"
        logger.info("bot %s is on Slack as @%s in %s (%s)", self.name, me["user"], me["team"], how)
        if (socket := self._socket) is not None:
            # Asked here, not left to the socket client: it retries a rejected token forever.
            opened = await self._until_done(
                lambda: self.client.apps_connections_open(app_token=socket.app_token),
                "SLACK_APP_TOKEN",
            )
            socket.client.wss_uri = opened["url"]
            await socket.connect_async()  # type: ignore[no-untyped-call]
            await asyncio.get_running_loop().create_future()

    async def _until_done(self, call: Callable[[], Awaitable[T]], variable: str) -> T:
        """`call`, tried again while Slack cannot be reached; a rejected token is a ConfigError."""
        delay = 1.0
        while True:
            try:
                return await call()
            except SlackApiError as err:
                error = err.response.get("error")
                if error in _UNAUTHORIZED:
                    message = f"Slack rejected the token ({error})"
                    raise ConfigError([Problem(variable, message)]) from None
                problem: object = error
            except (aiohttp.ClientError, TimeoutError) as err:
                problem = err
            logger.warning(
                "bot %s: cannot reach Slack (%s); trying again in %.0f s", self.name, problem, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    # --- HTTP: verified before anything reads the body ---

    async def _events(self, request: Request) -> Response:
        if self._closing:
            return PlainTextResponse("shutting down", 503)  # Slack delivers it again
        body = await read_body(request)
        if body is None:
            return PlainTextResponse("request too large", 413)
        assert self._verifier is not None
        if refusal := signature_problem(self._verifier, request.headers, body):
            return PlainTextResponse(refusal, 401)
        try:
            data = parse_request(body, request.headers.get("content-type", ""))
        except ValueError as err:
            return PlainTextResponse(f"not a Slack request: {err}", 400)
        kind = data.get("type")
        if kind == "url_verification":
            return JSONResponse({"challenge": data["challenge"]})
        if "command" not in data and kind != "event_callback":
            # e.g. app_rate_limited: Slack only tells; bolt has nothing to route it to.
            logger.info("bot %s: Slack says %s", self.name, kind)
            return Response(status_code=200)
        try:
            bolt_request = to_async_bolt_request(request, body)
        except Exception as err:  # bolt reads the fields it expects without checking types
            return PlainTextResponse(f"not a Slack request: {err!r}", 400)
        return to_starlette_response(await self._bolt.async_dispatch(bolt_request))

    # --- events: decide at once, answer in a tracked task ---

    async def _on_event(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if self._closing or not context.bot_user_id:
            return
        me = BotIdentity(context.bot_user_id, context.bot_id)
        incoming = to_incoming(event, bot=self.name, me=me)
        if incoming is None:
            return
        task = asyncio.create_task(self._answer(event, incoming, addressed=is_addressed(event, me)))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(
        self, event: Mapping[str, Any], incoming: IncomingMessage, *, addressed: bool
    ) -> None:
        where = destination(event)
        thread = (
            None
            if is_direct(event)
            else thread_key(self.name, where.channel, where.thread_ts or "")
        )
        try:
            if not addressed and (thread is None or await self._store.get_record(thread) is None):
                return  # a thread the bot has no part in
            if not await self._store.claim(message_key(self.name, event), ttl=SEEN_SECONDS):
                return  # already answered, or being answered
            writer = ReplyWriter(self.client, where)
            await writer.start()
            if thread is not None:
                await self._store.put_record(thread, {"at": time.time()}, ttl=THREAD_SECONDS)
            await self._reply(writer, incoming, has_files=bool(event.get("files")))
        except SlackApiError as err:
            error = err.response.get("error")
            hint = " (invite the bot to the channel)" if error == "not_in_channel" else ""
            logger.warning(
                "bot %s: Slack refused to answer in %s: %s%s", self.name, where.channel, error, hint
            )
        except (aiohttp.ClientError, TimeoutError) as err:
            logger.warning(
                "bot %s: cannot reach Slack to answer in %s: %s", self.name, where.channel, err
            )
        except Exception:
            logger.exception("bot %s: could not answer in %s", self.name, where.channel)

    async def _reply(
        self, writer: ReplyWriter, incoming: IncomingMessage, *, has_files: bool
    ) -> None:
        pipeline = self._pipeline
        if not incoming.text:  # files only, or a bare mention
            await writer.show(
                pipeline.composer.render("unsupported" if has_files else "welcome", incoming)
            )
            return
        if pipeline.bot.settings.streaming:
            text = await stream_reply(writer, pipeline.stream(incoming), self._edit_interval)
        else:
            reply = await pipeline.handle(incoming)
            text = reply.text if reply else ""
            await writer.show(text)
        if not text.strip():
            await writer.show(pipeline.composer.render("fallback", incoming))

    # --- the slash command ---

    async def _on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """`/botkit help`, `/botkit reset`: answered to the user alone, in the ack itself."""
        word = str(command.get("text") or "").strip().lower()
        channel, user = str(command.get("channel_id", "")), str(command.get("user_id", ""))
        if word == "reset" and not channel.startswith("D"):
            await ack(text=THREADS_ARE_CONVERSATIONS, response_type="ephemeral")
            return
        incoming = IncomingMessage(
            channel=CHANNEL,
            bot=self.name,
            conversation_id=channel,
            user_id=user,
            text=f"/{word}" if word in ("reset", "start") else "/help",
            user_name=command.get("user_name"),
        )
        try:
            reply = await self._pipeline.handle(incoming)
            text = to_mrkdwn(reply.text if reply else "")
        except Exception:
            logger.exception("bot %s: the command %r failed", self.name, word)
            text = COMMAND_FAILED
        await ack(text=text, response_type="ephemeral")

    async def aclose(self) -> None:
        """Take no new events, let the replies under way finish (a bounded wait), disconnect."""
        self._closing = True
        try:
            if self._socket is not None:
                await self._socket.close_async()  # type: ignore[no-untyped-call]
            if self._in_flight:
                _, pending = await asyncio.wait(self._in_flight, timeout=self._shutdown_timeout)
                if pending:
                    logger.warning(
                        "bot %s: %d replies still under way after %g s; cancelling them",
                        self.name,
                        len(pending),
                        self._shutdown_timeout,
                    )
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await self._session.close()


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


def _required(secret: SecretStr | None, variable: str, hint: str) -> str:
    value = secret.get_secret_value().strip() if secret else ""
    if not value:
        raise ConfigError([Problem(variable, f"the Slack channel needs {variable} ({hint})")])
    return value
