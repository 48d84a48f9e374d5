"""A Slack Web API server on 127.0.0.1 for tests: the part of Slack a botkit bot talks to.

It answers auth.test, chat.postMessage, chat.update, chat.postEphemeral,
users.info, reactions.add, conversations.replies and apps.connections.open (whose
WebSocket speaks Socket Mode) and, with `streaming=True`, chat.startStream,
chat.appendStream and chat.stopStream (a streaming message in a thread, its Markdown
at most 12,000 characters; without, they are `unknown_method`, as on a Slack-compatible
server that has no streaming messages), keeps the bot's messages (text and blocks) as a
channel would show them and the notes only one person sees, refuses a
chat.update longer than `update_limit` with msg_too_long, records every call,
and can be told to answer a call with an error (`ratelimited` is HTTP 429 with
Retry-After, as Slack sends it). With `echo_to`, it delivers the events Slack
would send about the bot's own messages (a `message` with its bot_id for each
post, a `message_changed` for each update) to the bot's events URL, signed.

The second half builds Events API requests and interactivity payloads (a button
clicked: `block_actions`) as Slack sends them, signed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import patch
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from botkit.adapters import CHANNELS, ServeOptions
from botkit.adapters.slack import SlackChannel
from botkit.adapters.telegram import TelegramChannel
from botkit.app import BotApp
from botkit.home import BotDefinition
from botkit.llm.base import Completion
from botkit.prompting.composer import Prompt
from botkit.serve import serve
from botkit.settings import Settings
from tests.adapters.telegram_api import FAST, FakeBotAPI
from tests.loopback import LoopbackServer, free_port

TOKEN = "xoxb-test-token-for-botkit"
APP_TOKEN = "xapp-test-app-token"
SECRET = "test-signing-secret"
BOT_USER = "UBOT0001"
BOT_ID = "BBOT0001"
TEAM = "T0000001"
USER = "UANN0001"
CHANNEL = "C0000001"
OTHER_CHANNEL = "C0000002"
DESK = "C0DESK001"
DM = "D0000001"
AGENT = "UAGENT001"
PEOPLE = {USER: "Ann", AGENT: "Anna", "UBOB00001": "Bob"}
"""Display names users.info knows."""


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    error: str | None = None


@dataclass
class Failure:
    method: str
    error: str
    status: int = 200
    retry_after: int | None = None
    times: int = 1
    when: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class Posted:
    """One of the bot's messages, as the channel shows it now."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]] | None = None
    edits: list[float] = field(default_factory=list)
    streaming: bool = False
    """A streaming message still being written (chat.startStream until chat.stopStream)."""
    streamed: bool = False
    """Written by streaming (its text is Markdown, not mrkdwn)."""

    def button(self, action_id: str) -> dict[str, Any] | None:
        """The button with this action id, if the message shows one now."""
        for block in self.blocks or ():
            for element in block.get("elements", ()):
                if element.get("action_id") == action_id:
                    return dict(element)
        return None

    @property
    def shown(self) -> str:
        """Everything the message shows: its blocks' texts, else its text."""
        if not self.blocks:
            return self.text
        texts = []
        for block in self.blocks:
            if "text" in block:
                texts.append(block["text"]["text"])
            texts += [e["text"] for e in block.get("elements", ()) if e.get("type") == "mrkdwn"]
        return "\n".join(texts)


@dataclass
class Ephemeral:
    """A note only `user` sees."""

    channel: str
    user: str
    text: str
    thread_ts: str | None


class FakeSlackAPI:
    """`async with FakeSlackAPI() as api:` then point the bot at `api.base_url`."""

    def __init__(self, *, update_limit: int = 4000, streaming: bool = False) -> None:
        self.update_limit = update_limit
        self.has_streaming = streaming
        self.calls: list[Call] = []
        self.messages: list[Posted] = []
        self.ephemerals: list[Ephemeral] = []
        self.failures: list[Failure] = []
        self.stalled: dict[str, asyncio.Event] = {}
        self.echo_to: str | None = None
        self.acks: list[dict[str, Any]] = []  # what the bot sent back over Socket Mode
        self._sockets: list[WebSocket] = []
        self._echoes: set[asyncio.Task[Any]] = set()
        self._clock = itertools.count(1)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def __aenter__(self) -> FakeSlackAPI:
        app = Starlette(
            routes=[
                Route("/api/{method}", self._call, methods=["GET", "POST"]),
                WebSocketRoute("/socket-mode", self._socket_mode),
            ]
        )
        self._http = LoopbackServer(app, ws="wsproto")
        await self._http.start()
        self.port = self._http.port
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for stalled in self.stalled.values():
            stalled.set()
        await asyncio.gather(*self._echoes, return_exceptions=True)
        for websocket in self._sockets:
            await websocket.close()
        await self._http.stop()

    # --- what a test does -------------------------------------------------------------

    def fail(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (those matching `when`) with `error`."""
        self.failures.append(Failure(method, error, status, retry_after, times, when))

    def stall(self, method: str) -> asyncio.Event:
        """Keep calls of `method` waiting until the returned event is set; then they fail
        with `fatal_error`, having changed nothing (like the calls of a worker that died)."""
        self.stalled[method] = asyncio.Event()
        return self.stalled[method]

    def called(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def in_channel(self, channel: str) -> list[Posted]:
        return [message for message in self.messages if message.channel == channel]

    def thread(self, channel: str, thread_ts: str) -> list[Posted]:
        return [m for m in self.in_channel(channel) if m.thread_ts == thread_ts]

    async def until(self, condition: Callable[[], Any], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; calls: {[c.method for c in self.calls]}")
            await asyncio.sleep(0.01)

    async def settled(self, quiet: float = 0.2) -> None:
        """Wait until no call has arrived for `quiet` seconds (to see that nothing more comes)."""
        count = -1
        while count != len(self.calls):
            count = len(self.calls)
            await asyncio.sleep(quiet)

    @property
    def connected(self) -> bool:
        """Whether a bot is connected over Socket Mode."""
        return bool(self._sockets)

    async def push(self, body: dict[str, Any], *, kind: str = "events_api") -> str:
        """Send an Events API body (or, with `kind="interactive"`, an interactivity
        payload) over the Socket Mode connection; the envelope id."""
        await self.until(lambda: self._sockets)
        envelope_id = f"envelope-{next(self._clock)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": body,
        }
        await self._sockets[-1].send_text(json.dumps(envelope))
        return envelope_id

    # --- the Web API ------------------------------------------------------------------

    async def _call(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        params = await _params(request)
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        wanted = APP_TOKEN if method == "apps.connections.open" else TOKEN
        if request.headers.get("authorization") != f"Bearer {wanted}":
            return self._error(call, "invalid_auth")
        if (stalled := self.stalled.get(method)) is not None:
            await stalled.wait()
            return self._error(call, "fatal_error")
        for failure in self.failures:
            if (
                failure.method == method
                and failure.times
                and (failure.when is None or failure.when(params))
            ):
                failure.times -= 1
                headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
                return self._error(call, failure.error, failure.status, headers)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if method in STREAM_METHODS and not self.has_streaming:
            handler = None
        if handler is None:
            return self._error(call, "unknown_method", 404)
        try:
            result = await handler(params)
        except ValueError as err:
            return self._error(call, str(err))
        return JSONResponse({"ok": True, **result})

    def _error(
        self, call: Call, error: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        call.error = error
        return JSONResponse({"ok": False, "error": error}, status, headers=headers)

    async def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://botkit-test.slack.com/",
            "team": "botkit test",
            "user": "shopbot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    async def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, text = _channel(params), str(params.get("text") or "")
        if not text.strip():
            raise ValueError("no_text")
        if len(text) > 40_000:
            raise ValueError("msg_too_long")
        thread_ts = params.get("thread_ts") or None
        message = Posted(channel, self._ts(), thread_ts, text, _blocks(params))
        self.messages.append(message)
        self._echo({"type": "message", **self._message_json(message)})
        return {"channel": channel, "ts": message.ts, "message": self._message_json(message)}

    async def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts, text = _channel(params), str(params.get("ts")), str(params.get("text") or "")
        message = next((m for m in self.in_channel(channel) if m.ts == ts), None)
        if message is None:
            raise ValueError("message_not_found")
        if len(text) > self.update_limit:
            raise ValueError("msg_too_long")
        message.text = text
        if "blocks" in params:
            message.blocks = _blocks(params)
        message.edits.append(time.monotonic())
        self._echo(
            {
                "type": "message",
                "subtype": "message_changed",
                "hidden": True,
                "channel": channel,
                "ts": self._ts(),
                "message": self._message_json(message),
            }
        )
        return {"channel": channel, "ts": ts, "text": text}

    async def _chat_startStream(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts = _channel(params), params.get("thread_ts")
        if not thread_ts:
            raise ValueError("invalid_thread_ts")
        if not channel.startswith("D") and not (
            params.get("recipient_user_id") and params.get("recipient_team_id")
        ):
            raise ValueError("invalid_arguments")  # required outside DMs
        text = _markdown(params, required=False)
        message = Posted(channel, self._ts(), thread_ts, text, streaming=True, streamed=True)
        self.messages.append(message)
        self._echo({"type": "message", **self._message_json(message)})
        return {"channel": channel, "ts": message.ts}

    async def _chat_appendStream(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming(params)
        message.text += _markdown(params, required=True, before=message.text)
        message.edits.append(time.monotonic())
        return {"channel": message.channel, "ts": message.ts}

    async def _chat_stopStream(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming(params)
        message.text += _markdown(params, required=False, before=message.text)
        message.streaming = False
        if blocks := params.get("blocks"):  # shown under the finished message
            message.blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        message.edits.append(time.monotonic())
        return {
            "channel": message.channel,
            "ts": message.ts,
            "message": self._message_json(message),
        }

    def _streaming(self, params: dict[str, Any]) -> Posted:
        channel, ts = _channel(params), str(params.get("ts"))
        message = next((m for m in self.in_channel(channel) if m.ts == ts), None)
        if message is None:
            raise ValueError("message_not_found")
        if not message.streaming:
            raise ValueError("message_not_in_streaming_state")
        return message

    async def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, user = _channel(params), str(params.get("user") or "")
        if not user:
            raise ValueError("user_not_found")
        text = str(params.get("text") or "")
        self.ephemerals.append(Ephemeral(channel, user, text, params.get("thread_ts") or None))
        return {"message_ts": self._ts()}

    async def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user") or "")
        if user not in PEOPLE:
            raise ValueError("user_not_found")
        name = PEOPLE[user]
        profile = {"display_name": name, "real_name": f"{name} Example"}
        return {"user": {"id": user, "name": name.lower(), "profile": profile}}

    async def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        _channel(params)
        return {}

    async def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = _channel(params), str(params.get("ts"))
        replies = [self._message_json(m) for m in self.thread(channel, ts)]
        return {"messages": replies, "has_more": False}

    async def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket-mode"}

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._clock):06d}"

    def _message_json(self, message: Posted) -> dict[str, Any]:
        data = {
            "channel": message.channel,
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": message.text,
            "ts": message.ts,
        }
        if message.thread_ts:
            data["thread_ts"] = message.thread_ts
            parent = next((m for m in self.messages if m.ts == message.thread_ts), None)
            data["parent_user_id"] = BOT_USER if parent else USER
        if message.blocks:
            data["blocks"] = message.blocks
        return data

    def _echo(self, event: dict[str, Any]) -> None:
        if self.echo_to is None:
            return
        channel = event.get("channel", "")
        event["channel_type"] = "im" if channel.startswith("D") else "channel"
        task = asyncio.create_task(deliver(self.echo_to, event_body(event)))
        self._echoes.add(task)
        task.add_done_callback(self._echoes.discard)

    # --- Socket Mode ------------------------------------------------------------------

    async def _socket_mode(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self._sockets.append(websocket)
        await websocket.send_text(json.dumps({"type": "hello", "num_connections": 1}))
        try:
            while True:
                self.acks.append(json.loads(await websocket.receive_text()))
        except WebSocketDisconnect:
            pass
        finally:
            self._sockets.remove(websocket)


STREAM_METHODS = {"chat.startStream", "chat.appendStream", "chat.stopStream"}
STREAM_LIMIT = 12_000


def _markdown(params: dict[str, Any], *, required: bool, before: str = "") -> str:
    text = str(params.get("markdown_text") or "")
    if required and not text:
        raise ValueError("invalid_arguments")
    if len(before) + len(text) > STREAM_LIMIT:
        raise ValueError("msg_too_long")
    return text


def _blocks(params: dict[str, Any]) -> list[dict[str, Any]] | None:
    blocks = params.get("blocks")
    if isinstance(blocks, str):  # form-encoded calls send them as JSON text
        blocks = json.loads(blocks)
    return blocks or None


def _channel(params: dict[str, Any]) -> str:
    channel = str(params.get("channel") or "")
    if not channel:
        raise ValueError("channel_not_found")
    return channel


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if body and "json" in request.headers.get("content-type", ""):
        params.update(json.loads(body))
    elif body:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    return params


# --- Events API requests, as Slack sends them ------------------------------------------

_event_ids = itertools.count(1)
_user_ts = itertools.count(1)


def new_ts() -> str:
    return f"{int(time.time())}.{500_000 + next(_user_ts):06d}"


def event_body(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": "A0000001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}
        ],
    }


def message(
    text: str,
    *,
    channel: str = CHANNEL,
    user: str = USER,
    ts: str | None = None,
    thread_ts: str | None = None,
    kind: str = "message",
    **extra: Any,
) -> dict[str, Any]:
    """A user's message event; `kind="app_mention"` for the mention event of the same message."""
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": kind,
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "client_msg_id": f"msg-{channel}-{ts}",
        "team": TEAM,
    }
    if kind == "message":
        event["channel_type"] = "im" if channel.startswith("D") else "channel"
    if thread_ts:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def mention(text: str, **options: Any) -> dict[str, Any]:
    return message(f"<@{BOT_USER}> {text}", kind="app_mention", **options)


def signed_headers(
    body: bytes, *, secret: str = SECRET, timestamp: int | None = None, content_type: str = ""
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
        "Content-Type": content_type or "application/json",
    }


async def deliver(
    url: str,
    body: dict[str, Any] | bytes,
    *,
    retry: int | None = None,
    secret: str = SECRET,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """POST a signed Events API request, as Slack does (with its retry headers on a retry)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = signed_headers(raw, secret=secret, timestamp=timestamp)
    if retry is not None:
        sent |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    if client is not None:
        return await client.post(url, content=raw, headers=sent | (headers or {}))
    async with httpx.AsyncClient() as own:
        return await own.post(url, content=raw, headers=sent | (headers or {}))


async def slash_command(
    url: str,
    text: str,
    *,
    channel: str = DM,
    command: str = "/botkit",
    trigger_id: str | None = None,
) -> httpx.Response:
    """POST a signed slash command, as Slack does; each has a trigger_id of its own."""
    form = {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "channel_id": channel,
        "user_id": USER,
        "user_name": "ann",
        "command": command,
        "text": text,
        "response_url": "https://hooks.slack.invalid/commands/1/2",
        "trigger_id": trigger_id or f"{next(_event_ids)}.{TEAM}.command",
    }
    raw = urlencode(form).encode()
    headers = signed_headers(raw, content_type="application/x-www-form-urlencoded")
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=raw, headers=headers)


def block_action(
    posted: Posted,
    action_id: str,
    *,
    user: str = AGENT,
    value: str | None = None,
) -> dict[str, Any]:
    """The `block_actions` payload Slack sends when `user` clicks a button of `posted`
    (its value is the button's unless given)."""
    button = posted.button(action_id) or {"text": {"type": "plain_text", "text": "?"}}
    username = PEOPLE.get(user, "someone").lower()
    return {
        "type": "block_actions",
        "user": {"id": user, "username": username, "name": username, "team_id": TEAM},
        "api_app_id": "A0000001",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": posted.ts,
            "channel_id": posted.channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{next(_event_ids)}.{TEAM}.abcdef",
        "team": {"id": TEAM, "domain": "botkit-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": posted.channel, "name": "support-desk"},
        "message": {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": posted.text,
            "ts": posted.ts,
            "blocks": posted.blocks or [],
        },
        "state": {"values": {}},
        "response_url": "https://hooks.slack.invalid/actions/T0000001/1/2",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "botkit_handoff",
                "text": button["text"],
                "value": value if value is not None else button.get("value", ""),
                "type": "button",
                "action_ts": new_ts(),
            }
        ],
    }


async def interact(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    """POST an interactivity payload as Slack does: form-encoded `payload=`, signed."""
    raw = urlencode({"payload": json.dumps(payload)}).encode()
    headers = signed_headers(
        raw,
        secret=secret,
        timestamp=timestamp,
        content_type="application/x-www-form-urlencoded",
    )
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=raw, headers=headers)


# --- a botkit bot serving Slack against the fake ----------------------------------------


TIMING = {"edit_interval": 0.05, "shutdown_timeout": 5.0}
"""What `serving` builds the Slack channel with; a test may patch an entry."""


def fast_slack(app: BotApp, options: ServeOptions) -> SlackChannel:
    return SlackChannel(app, **TIMING)


def fast_telegram(app: BotApp, options: ServeOptions) -> TelegramChannel:
    return TelegramChannel(app, webhook_url=options.webhook_url, timing=FAST)


@dataclass
class Served:
    app: BotApp
    url: str  # the events URL (nothing listens there in Socket Mode)
    port: int


@asynccontextmanager
async def serving(
    api: FakeSlackAPI,
    bot: BotDefinition,
    *,
    responder: Any = None,
    channels: tuple[str, ...] = ("slack",),
    telegram: FakeBotAPI | None = None,
    store: str = "memory://",
    lease: float = 30.0,
    **slack: Any,
) -> AsyncIterator[Served]:
    """The bot on its channels (Slack; or Telegram, with `telegram`), and its desk if it has
    one, run by `botkit.serve.serve` on a free port until the block ends (then stopped
    with SIGTERM, as `botkit serve` is). The channels run with short intervals."""
    port = free_port()
    slack = {"bot_token": TOKEN, "signing_secret": SECRET, "api_url": api.base_url, **slack}
    tg = {"bot_token": telegram.token, "base_url": telegram.base_url} if telegram else {}
    settings = Settings(store={"url": store, "lease": lease}, slack=slack, telegram=tg)
    fast = {"slack": f"{__name__}:fast_slack", "telegram": f"{__name__}:fast_telegram"}
    with patch.dict(CHANNELS, fast):
        async with BotApp(settings=settings, bots=[bot]) as app:
            if responder is not None:
                app.pipelines[bot.name].responder = responder
            task = asyncio.create_task(serve(app, ServeOptions(channels=channels, port=port)))
            try:
                if slack.get("app_token"):
                    await api.until(lambda: task.done() or api.connected)
                    if task.done():
                        task.result()
                else:
                    await _until_listening(port, task)
                if telegram is not None:
                    await telegram.until(lambda: task.done() or telegram.called("getUpdates"))
                yield Served(app, f"http://127.0.0.1:{port}/slack/events", port)
            finally:
                if not task.done():
                    os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.wait_for(task, 20)


async def _until_listening(port: int, task: asyncio.Task[None]) -> None:
    for _ in range(500):
        if task.done():
            task.result()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("the server did not start")


class ScriptedResponder:
    """Answers every prompt with `answer`, streamed in `chunk`-sized deltas `pause` seconds
    apart; waits for `gate` first when given."""

    def __init__(
        self,
        answer: str | Callable[[str], str],
        *,
        chunk: int = 1_000_000,
        pause: float = 0.0,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.answer = answer
        self.chunk = chunk
        self.pause = pause
        self.gate = gate
        self.questions: list[str] = []

    async def _text(self, prompt: Prompt) -> str:
        question = prompt.message.text
        self.questions.append(question)
        if self.gate is not None:
            await self.gate.wait()
        return self.answer(question) if callable(self.answer) else self.answer

    async def complete(self, prompt: Prompt) -> Completion:
        return Completion(text=await self._text(prompt))

    async def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        text = await self._text(prompt)
        for start in range(0, len(text), self.chunk):
            yield text[start : start + self.chunk]
            await asyncio.sleep(self.pause)
        yield Completion(text=text)
