"""One Slack app per process, shared by the Slack channel (customers) and the Slack desk
(people who take conversations over): bolt's `AsyncApp`, the signature check on
`POST /slack/events` (or Socket Mode), one Web API client, and who the bot is.

    request → signature checked here → bolt → event handlers (the desk's first, then
    the channel's), button actions, slash commands; each decides before the ack and
    does its slow work in a tracked task afterwards

Nothing on the way to the ack calls the Web API. The bot's identity (auth.test)
is asked for when serving starts and again until Slack answers, in the
background; until then an event names the bot in its `authorizations`. (bolt's
own single-workspace authorization calls auth.test for every request until one
succeeds, so with Slack unreachable every event would get a 500.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import (
    to_async_bolt_request,
    to_starlette_response,
)
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from botkit.adapters.slack.events import (
    BotIdentity,
    is_form,
    parse_request,
    read_body,
    signature_problem,
)
from botkit.adapters.slack.payloads import check_envelope, check_event, check_request
from botkit.adapters.slack.reply import RateLimitRetry
from botkit.errors import ConfigError, PayloadError, Problem, StoreError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from botkit.adapters import Channel
    from botkit.app import BotApp
    from botkit.settings import SlackSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_PATH = "/slack/events"
SHARED_KEY = "slack"
"""Where a `BotApp` keeps its Slack app (`app.shared`)."""
_UNAUTHORIZED = {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}

EventHandler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[bool]]
"""Offered an event and the request's body before the ack; True when it took the event."""


class SlackApp:
    """The process's one Slack app: what the Slack channel and the Slack desk listen on.

    It is a `Channel` for `botkit serve`; when the customer-facing Slack channel is
    served, that channel is what serve runs (`serving`), and it runs this app.
    """

    def __init__(self, settings: SlackSettings, *, purpose: str) -> None:
        token = _required(settings.bot_token, "SLACK_BOT_TOKEN", "the bot's xoxb- token", purpose)
        app_token = settings.app_token.get_secret_value() if settings.app_token else None
        secret = None
        if app_token is None:
            hint = "or SLACK_APP_TOKEN for Socket Mode"
            secret = _required(settings.signing_secret, "SLACK_SIGNING_SECRET", hint, purpose)
        self._verifier = SignatureVerifier(secret) if secret else None
        base_url = settings.api_url.rstrip("/") + "/"
        self._session = aiohttp.ClientSession()  # one connection pool for every Web API call
        self.client = AsyncWebClient(
            token=token,
            base_url=base_url,
            session=self._session,
            # Not 5xx: a chat.postMessage that failed on Slack's side may still have posted.
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                RateLimitRetry(max_retry_count=5),  # waits Retry-After each time
            ],
        )
        bolt_logger = logging.getLogger("slack_bolt")
        with _without(bolt_logger, warning_client_prioritized_and_token_skipped()):
            # bolt reads SLACK_BOT_TOKEN itself and says the client handed to it wins: it
            # does, on purpose (this one has no token; `_Authorization` hands it over).
            self.bolt = AsyncApp(
                name="botkit",
                client=AsyncWebClient(base_url=base_url, session=self._session),
                authorize=_Authorization(self, token),
                signing_secret=secret or "",
                request_verification_enabled=False,  # done in _events, before any parsing
                # Listeners decide before the ack (and store what they accept, so a store
                # failure is a 503 that Slack delivers again); slow work runs in tasks.
                process_before_response=True,
                logger=bolt_logger,
            )
        self.bolt.event(re.compile(".*"))(self._on_event)
        self._socket = (
            AsyncSocketModeHandler(self.bolt, app_token, web_client=self.client)
            if app_token
            else None
        )
        if self._socket is not None:  # every envelope through the check first
            self._socket.client.socket_mode_request_listeners = [self._on_socket_request]
        self.identity: BotIdentity | None = None
        self.serving: Channel = self
        """What `botkit serve` runs for Slack: this app, or the Slack channel that runs it."""
        self.shutdown_timeout = 10.0
        self.closing = False
        self.closed = False
        self._connected = False
        self._handlers: list[EventHandler] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def of(cls, app: BotApp, *, purpose: str) -> SlackApp:
        """The Slack app of a running `BotApp`, made on first use by the channel or the desk
        (`purpose` names which, in the error about a missing setting)."""
        shared = app.shared.get(SHARED_KEY)
        if not isinstance(shared, SlackApp) or shared.closed:
            shared = app.shared[SHARED_KEY] = cls(app.settings.slack, purpose=purpose)
        return shared

    @property
    def ready(self) -> bool:
        """Known to Slack (and connected, in Socket Mode): `/readyz` waits for it."""
        return self.identity is not None and (self._socket is None or self._connected)

    @property
    def socket_mode(self) -> bool:
        return self._socket is not None

    def on_event(self, handler: EventHandler, *, first: bool = False) -> None:
        """Offer every event to `handler`, in order, until one takes it. The desk's handler
        goes `first`: a reply in a desk thread is the desk's even when it mentions the bot."""
        if first:
            self._handlers.insert(0, handler)
        else:
            self._handlers.append(handler)

    def me(self, body: Mapping[str, Any]) -> BotIdentity:
        """Who the bot is: from auth.test once Slack answered it, else from the event."""
        if self.identity is not None:
            return self.identity
        for authorization in body.get("authorizations") or ():
            if isinstance(authorization, dict) and authorization.get("is_bot"):
                user_id = authorization.get("user_id")
                if isinstance(user_id, str):
                    return BotIdentity(user_id)
        return BotIdentity("")  # mentions cannot be recognised; DMs and app_mention still are

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the ack, tracked so that stopping lets it finish."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def routes(self) -> list[BaseRoute]:
        return [] if self._socket else [Route(EVENTS_PATH, self._events, methods=["POST"])]

    async def run(self) -> None:
        """Learn who the bot is (while events are already acknowledged); in Socket Mode,
        connect and take events until cancelled."""
        me = await self._until_done(self.client.auth_test, "SLACK_BOT_TOKEN")
        self.identity = BotIdentity(str(me["user_id"]), me.get("bot_id"))
        how = "Socket Mode" if self._socket else f"the Events API at {EVENTS_PATH}"
        logger.info("on Slack as @%s in %s (%s)", me["user"], me["team"], how)
        if (socket := self._socket) is not None:
            # Asked here, not left to the socket client: it retries a rejected token forever.
            opened = await self._until_done(
                lambda: self.client.apps_connections_open(app_token=socket.app_token),
                "SLACK_APP_TOKEN",
            )
            socket.client.wss_uri = opened["url"]
            await socket.connect_async()  # type: ignore[no-untyped-call]
            self._connected = True
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
            logger.warning("cannot reach Slack (%s); trying again in %.0f s", problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    # --- HTTP: verified before anything reads the body ---

    async def _events(self, request: Request) -> Response:
        if self.closing:
            return PlainTextResponse("shutting down", 503)  # Slack delivers it again
        body = await read_body(request)
        if body is None:
            return PlainTextResponse("request too large", 413)
        assert self._verifier is not None
        if refusal := signature_problem(self._verifier, request.headers, body):
            return PlainTextResponse(refusal, 401)
        content_type = request.headers.get("content-type", "")
        form = is_form(content_type)
        try:
            data = parse_request(body, content_type)
        except ValueError as err:
            return PlainTextResponse(f"not a Slack request: {err}", 400)
        if form and data.get("ssl_check") == "1" and "command" not in data:
            return Response(status_code=200)  # Slack checking the certificate: nothing else
        try:
            check_request(data, form=form)
        except PayloadError as err:
            _unreadable(_kind(data, form=form), err)
            return Response(status_code=200)  # an error would only bring it again
        kind = data.get("type")
        if kind == "url_verification":
            return JSONResponse({"challenge": data["challenge"]})
        if not form and kind != "event_callback":
            # e.g. app_rate_limited: Slack only tells; bolt has nothing to route it to.
            logger.info("Slack says %s", kind)
            return Response(status_code=200)
        if form and "payload" not in data:
            # bolt takes any form whose text contains "payload" for an interactivity
            # payload, and a command such as "/botkit what is a payload" for nothing;
            # %70 is a "p" still, once decoded, but no longer that word.
            body = body.replace(b"payload", b"%70ayload")
        try:
            bolt_request = to_async_bolt_request(request, body)
        except Exception as err:  # bolt reads the fields it expects without checking types
            return PlainTextResponse(f"not a Slack request: {err!r}", 400)
        return to_starlette_response(await self.bolt.async_dispatch(bolt_request))

    async def _on_socket_request(self, client: Any, request: SocketModeRequest) -> None:
        """A Socket Mode envelope: checked as a request over HTTP is, then bolt's."""
        assert self._socket is not None
        try:
            check_envelope(request.type, request.payload)
        except PayloadError as err:
            _unreadable(_ENVELOPES.get(request.type, request.type), err)
            await client.send_socket_mode_response(
                SocketModeResponse(envelope_id=request.envelope_id)
            )
            return
        await self._socket.handle(client, request)

    async def _on_event(self, body: dict[str, Any], event: dict[str, Any]) -> BoltResponse | None:
        if self.closing:
            return None
        try:
            # Checked here too: the listeners may be reached without `_events`.
            check_event(event)
            for handler in self._handlers:
                if await handler(event, body):
                    break
        except PayloadError as err:
            _unreadable("event", err)
        except StoreError as err:  # not acknowledged: Slack delivers the event again
            logger.warning("cannot store a Slack event (%s); Slack will send it again", err)
            return BoltResponse(status=503, body="cannot store the event now")
        return None

    async def aclose(self) -> None:
        """Take no new events, let the work under way finish (a bounded wait), disconnect.
        The channel and the desk may both close it: the second close does nothing."""
        if self.closing:
            return
        self.closing = True
        try:
            if self._socket is not None:
                await self._socket.close_async()  # type: ignore[no-untyped-call]
            if self._tasks:
                _, pending = await asyncio.wait(self._tasks, timeout=self.shutdown_timeout)
                if pending:
                    logger.warning(
                        "%d replies still under way after %g s; cancelling them",
                        len(pending),
                        self.shutdown_timeout,
                    )
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await self._session.close()
            self.closed = True


class _Authorization(AsyncAuthorize):
    """bolt's authorization from what is known: the token, and the identity once Slack
    told it. It never calls the Web API."""

    def __init__(self, slack: SlackApp, token: str) -> None:
        self._slack = slack
        self._token = token

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult:
        me = self._slack.identity
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=self._token,
            bot_user_id=me.user_id if me else None,
            bot_id=me.bot_id if me else None,
        )


_WORD = re.compile(r"[a-z_]{1,40}")
_ENVELOPES = {
    "events_api": "event",
    "interactive": "interactivity payload",
    "slash_commands": "slash command",
}


def _kind(data: Mapping[str, Any], *, form: bool) -> str:
    """What a request is, for the log: `event_callback`, a slash command…"""
    if form:
        return "interactivity payload" if "payload" in data else "slash command"
    kind = data.get("type")
    # Only a word goes into the log: the request is signed, but its sender is not trusted.
    return kind if isinstance(kind, str) and _WORD.fullmatch(kind) else "request"


def _unreadable(kind: str, err: PayloadError) -> None:
    """One line for a request Slack will not be asked to send again."""
    logger.warning("ignored a Slack %s that botkit cannot read: %s", kind, err)


def _required(secret: SecretStr | None, variable: str, hint: str, purpose: str) -> str:
    value = secret.get_secret_value().strip() if secret else ""
    if not value:
        message = f"the Slack {purpose} needs {variable} ({hint})"
        raise ConfigError([Problem(variable, message)])
    return value


@contextlib.contextmanager
def _without(log: logging.Logger, message: str) -> Iterator[None]:
    """Drop one known message from `log` for the duration of the block."""

    def keep(record: logging.LogRecord) -> bool:
        return record.getMessage() != message

    log.addFilter(keep)
    try:
        yield
    finally:
        log.removeFilter(keep)
