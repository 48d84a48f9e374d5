"""A Bot API server on 127.0.0.1 for tests: the part of Telegram a botkit bot talks to.

It keeps updates until a bot confirms them (getUpdates' offset), answers long
polls as soon as an update arrives, keeps the bot's messages as a chat would show
them, checks HTML the way Telegram does (known tags, balanced, escaped, at most
4096 characters shown), records every call, and can be told to answer a call
with an error. `deliver` posts an update to the webhook a bot registered, with
the secret it registered, as Telegram would. With `drafts=True` it has
`sendMessageDraft` (Bot API 9.3), for private chats only, and keeps each draft's
states; without, it answers that method 404, as a Bot API server before it does.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from botkit.adapters.telegram import TelegramChannel, Timing
from botkit.app import BotApp
from botkit.handoff import Desk
from botkit.home import BotDefinition
from botkit.llm.base import Completion, Responder
from botkit.prompting.composer import Prompt
from botkit.settings import Settings
from tests.loopback import LoopbackServer

TOKEN = "123456:TEST-token-for-botkit"
BOT_ID = 4242
BOT_USERNAME = "shop_bot"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Shop", "username": BOT_USERNAME}

_TEXT_PARAMS = {"text", "parse_mode", "action", "url", "secret_token", "caption"}
_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}
_TAGS |= {"blockquote", "tg-spoiler", "span", "tg-emoji"}
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)(?:\s[^<>]*)?>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
CANNOT_PARSE = 'Bad Request: can\'t parse entities: Unsupported start tag "b" at byte offset 0'


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class Failure:
    method: str
    status: int
    description: str
    retry_after: int | None = None
    times: int = 1
    when: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class Draft:
    """One state of a message draft, as the private chat showed it while it was written."""

    chat_id: int
    draft_id: int
    text: str
    parse_mode: str | None
    at: float


@dataclass
class Shown:
    """One of the bot's messages, as the chat shows it now."""

    chat_id: int
    message_id: int
    text: str  # what the user reads
    sent: str  # the text as the bot sent it (HTML when parse_mode is HTML)
    parse_mode: str | None
    quote: int | None
    edits: list[float] = field(default_factory=list)
    buttons: dict[str, Any] | None = None  # the inline keyboard under it (reply_markup)

    def labels(self) -> list[list[str]]:
        """The buttons' labels, row by row."""
        rows = (self.buttons or {}).get("inline_keyboard", [])
        return [[button["text"] for button in row] for row in rows]

    def button(self, label: str) -> dict[str, Any]:
        """The button whose label starts with `label`."""
        rows = (self.buttons or {}).get("inline_keyboard", [])
        found = [b for row in rows for b in row if b["text"].startswith(label)]
        assert found, f"no button {label!r} under {self.text!r}: {self.labels()}"
        return dict(found[0])

    @property
    def markup(self) -> dict[str, Any] | None:
        """The inline keyboard under it, as Telegram was sent it."""
        return self.buttons


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text a chat shows; ValueError with Telegram's description for bad HTML."""
    if parse_mode is None:
        return text
    if parse_mode != "HTML":
        raise ValueError(f"Bad Request: unsupported parse_mode {parse_mode}")
    shown: list[str] = []
    stack: list[str] = []
    at = 0
    while at < len(text):
        if text[at] == "<":
            tag = _TAG.match(text, at)
            name = tag[1].lower() if tag else ""
            if tag is None or name not in _TAGS:
                raise ValueError(_cannot_parse(f'Unsupported start tag "{name}"', at))
            if tag[0].startswith("</"):
                if not stack or stack[-1] != name:
                    raise ValueError(_cannot_parse("Unexpected end tag", at))
                stack.pop()
            else:
                if name == "blockquote" and "blockquote" in stack:
                    raise ValueError(_cannot_parse("Nested blockquote", at))
                if stack and stack[-1] in ("pre", "code") and (stack[-1], name) != ("pre", "code"):
                    raise ValueError(_cannot_parse("Entity inside code", at))
                stack.append(name)
            at = tag.end()
        elif text[at] == "&":
            entity = _ENTITY.match(text, at)
            if entity is None:
                raise ValueError(_cannot_parse("Unsupported HTML entity", at))
            shown.append(html.unescape(entity[0]))
            at = entity.end()
        else:
            shown.append(text[at])
            at += 1
    if stack:
        raise ValueError(_cannot_parse(f'Can\'t find end tag for "{stack[-1]}"', len(text)))
    return "".join(shown)


def _cannot_parse(problem: str, at: int) -> str:
    return f"Bad Request: can't parse entities: {problem} at byte offset {at}"


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class FakeBotAPI:
    """`async with FakeBotAPI() as api:` then point the bot at `api.base_url`."""

    def __init__(self, *, token: str = TOKEN, drafts: bool = False) -> None:
        self.token = token
        self.has_drafts = drafts
        self.calls: list[Call] = []
        self.messages: list[Shown] = []
        self.drafts: list[Draft] = []
        self.failures: list[Failure] = []
        self.webhook: tuple[str, str | None] | None = None  # url, secret
        self.commands: list[dict[str, Any]] = []
        self.answered: dict[str, str | None] = {}  # callback query id → the text shown
        self._pending: list[dict[str, Any]] = []
        self._allowed: list[str] | None = None
        self._arrived = asyncio.Event()
        self._message_ids = itertools.count(1000)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeBotAPI:
        app = Starlette(routes=[Route("/bot{token}/{method}", self._call, methods=["GET", "POST"])])
        self._http = LoopbackServer(app, ws="none")
        await self._http.start()
        self.port = self._http.port
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._arrived.set()
        await self._http.stop()

    # --- what a test does -------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates."""
        self._pending.append(update)
        self._arrived.set()

    async def deliver(self, update: dict[str, Any]) -> httpx.Response:
        """POST an update to the registered webhook, with the registered secret."""
        assert self.webhook is not None, "no webhook was set"
        url, secret = self.webhook
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with httpx.AsyncClient() as client:
            return await client.post(url, json=update, headers=headers)

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (those matching `when`) with an error."""
        self.failures.append(Failure(method, status, description, retry_after, times, when))

    def called(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def chat(self, chat_id: int) -> list[Shown]:
        return [message for message in self.messages if message.chat_id == chat_id]

    async def until(self, condition: Callable[[], Any], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; calls: {[c.method for c in self.calls]}")
            await asyncio.sleep(0.01)

    # --- the Bot API ------------------------------------------------------------------

    async def _call(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        params = await _params(request)
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        if request.path_params["token"] != self.token:
            call.status = 401
            return _error(401, "Unauthorized")
        for failure in self.failures:
            if (
                failure.method == method
                and failure.times
                and (failure.when is None or failure.when(params))
            ):
                failure.times -= 1
                call.status = failure.status
                return _error(failure.status, failure.description, failure.retry_after)
        handler = getattr(self, f"_{method}", None)
        if method == "sendMessageDraft" and not self.has_drafts:
            handler = None
        if handler is None:
            call.status = 404
            return _error(404, "Not Found: method not found")
        try:
            result = await handler(params)
        except ValueError as err:
            call.status = 400
            return _error(400, str(err))
        return JSONResponse({"ok": True, "result": result})

    async def _getMe(self, params: dict[str, Any]) -> Any:
        return {**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False}

    async def _getUpdates(self, params: dict[str, Any]) -> Any:
        if self.webhook:
            raise ValueError("Conflict: can't use getUpdates method while webhook is active")
        if params.get("allowed_updates") is not None:
            self._allowed = params["allowed_updates"] or None
        if offset := int(params.get("offset") or 0):
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        if self._allowed:  # Telegram never delivers the kinds a bot did not ask for
            self._pending = [u for u in self._pending if _kind(u) in self._allowed]
        timeout = float(params.get("timeout") or 0)
        if not self._pending and timeout > 0:
            self._arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
            return await self._getUpdates({**params, "timeout": 0})
        return self._pending[: int(params.get("limit") or 100)]

    async def _sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id = int(params["chat_id"])
        text, parse_mode = str(params.get("text", "")), params.get("parse_mode")
        shown = _checked(text, parse_mode)
        quote = (params.get("reply_parameters") or {}).get("message_id")
        message = Shown(chat_id, next(self._message_ids), shown, text, parse_mode, quote)
        message.buttons = params.get("reply_markup")
        self.messages.append(message)
        return _message_json(message)

    async def _editMessageText(self, params: dict[str, Any]) -> Any:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        text, parse_mode = str(params.get("text", "")), params.get("parse_mode")
        for message in self.messages:
            if (message.chat_id, message.message_id) == (chat_id, message_id):
                break
        else:
            raise ValueError("Bad Request: message to edit not found")
        shown = _checked(text, parse_mode)
        buttons = params.get("reply_markup")  # an edit without one removes the keyboard
        unchanged = (text, parse_mode) == (message.sent, message.parse_mode)
        if shown == message.text and unchanged and buttons == message.buttons:
            raise ValueError(NOT_MODIFIED)
        message.text, message.sent, message.parse_mode = shown, text, parse_mode
        message.buttons = buttons
        message.edits.append(time.monotonic())
        return _message_json(message)

    async def _editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        message = self._find(int(params["chat_id"]), int(params["message_id"]))
        buttons = params.get("reply_markup")
        if buttons == message.buttons:
            raise ValueError(NOT_MODIFIED)
        message.buttons = buttons
        return _message_json(message)

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        query_id = str(params["callback_query_id"])
        if query_id in self.answered:
            raise ValueError("Bad Request: query is too old and response timeout expired")
        self.answered[query_id] = params.get("text")
        return True

    def _find(self, chat_id: int, message_id: int) -> Shown:
        for message in self.messages:
            if (message.chat_id, message.message_id) == (chat_id, message_id):
                return message
        raise ValueError("Bad Request: message to edit not found")

    async def _sendMessageDraft(self, params: dict[str, Any]) -> Any:
        chat_id, draft_id = int(params["chat_id"]), int(params.get("draft_id") or 0)
        if chat_id < 0:
            raise ValueError("Bad Request: TEXTDRAFT_PEER_INVALID")
        if not draft_id:
            raise ValueError("Bad Request: draft_id must be non-zero")
        text, parse_mode = str(params.get("text", "")), params.get("parse_mode")
        shown = _checked(text, parse_mode)
        self.drafts.append(Draft(chat_id, draft_id, shown, parse_mode, time.monotonic()))
        return True

    async def _sendChatAction(self, params: dict[str, Any]) -> Any:
        return True

    async def _setMyCommands(self, params: dict[str, Any]) -> Any:
        self.commands = params["commands"]
        return True

    async def _setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = (params["url"], params.get("secret_token"))
        return True

    async def _deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _getWebhookInfo(self, params: dict[str, Any]) -> Any:
        url = self.webhook[0] if self.webhook else ""
        pending = len(self._pending)
        return {"url": url, "has_custom_certificate": False, "pending_update_count": pending}


def _checked(text: str, parse_mode: str | None) -> str:
    shown = visible_text(text, parse_mode)
    if not shown.strip():
        raise ValueError("Bad Request: message text is empty")
    if utf16_length(shown) > 4096:
        raise ValueError("Bad Request: message is too long")
    return shown


def _kind(update: dict[str, Any]) -> str:
    return next(key for key in update if key != "update_id")


def _message_json(message: Shown) -> dict[str, Any]:
    chat_type = "private" if message.chat_id > 0 else "supergroup"
    data: dict[str, Any] = {
        "message_id": message.message_id,
        "date": int(time.time()),
        "chat": {"id": message.chat_id, "type": chat_type},
        "from": BOT_USER,
        "text": message.text,
    }
    if message.buttons:
        data["reply_markup"] = message.buttons
    return data


def _error(status: int, description: str, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status)


async def _params(request: Request) -> dict[str, Any]:
    raw: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if body and "json" in request.headers.get("content-type", ""):
        raw.update(json.loads(body))
    elif body:
        raw.update(parse_qsl(body.decode(), keep_blank_values=True))
    params = {}
    for key, value in raw.items():
        if isinstance(value, str) and key not in _TEXT_PARAMS:
            with suppress(ValueError):
                value = json.loads(value)
        params[key] = value
    return params


# --- updates, as Telegram would send them ------------------------------------------------

_update_ids = itertools.count(1)
_user_message_ids = itertools.count(1)

PRIVATE_CHAT = 111
GROUP_CHAT = -100500


def user(user_id: int = 111, first_name: str = "Ann") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}


def message_update(
    *,
    chat_id: int = PRIVATE_CHAT,
    sender: dict[str, Any] | None = None,
    kind: str = "message",
    reply_to: dict[str, Any] | None = None,
    **content: Any,
) -> dict[str, Any]:
    """An update carrying a message; `content` is e.g. text="…" or photo=[…]."""
    chat: dict[str, Any] = (
        {"id": chat_id, "type": "private", "first_name": "Ann"}
        if chat_id > 0
        else {"id": chat_id, "type": "supergroup", "title": "Customers"}
    )
    message: dict[str, Any] = {
        "message_id": next(_user_message_ids),
        "date": int(time.time()),
        "chat": chat,
        "from": sender or user(),
        **content,
    }
    if "text" in content and (entities := _entities(content["text"])):
        message["entities"] = entities
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    return {"update_id": next(_update_ids), kind: message}


def text_update(text: str, **options: Any) -> dict[str, Any]:
    return message_update(text=text, **options)


def group_update(text: str, *, user_id: int = 222, **options: Any) -> dict[str, Any]:
    sender = user(user_id, "Bob")
    return message_update(text=text, chat_id=GROUP_CHAT, sender=sender, **options)


def photo_update(**options: Any) -> dict[str, Any]:
    size = {"file_id": "AgAD", "file_unique_id": "AQAD", "width": 90, "height": 90}
    return message_update(photo=[size], **options)


def sticker_update(**options: Any) -> dict[str, Any]:
    sticker = {"file_id": "CAAD", "file_unique_id": "AgAD", "type": "regular", "width": 512}
    sticker |= {"height": 512, "is_animated": False, "is_video": False}
    return message_update(sticker=sticker, **options)


_callback_ids = itertools.count(1)


def click(
    shown: Shown,
    label: str,
    *,
    sender: dict[str, Any] | None = None,
    asked: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The update Telegram sends when a user clicks a button under one of the bot's
    messages; `asked` is the user's message the bot's answer quotes (in groups)."""
    message = _message_json(shown)
    if asked is not None:
        message["reply_to_message"] = asked
    query = {
        "id": str(next(_callback_ids)),
        "from": sender or user(),
        "message": message,
        "chat_instance": f"ci{shown.chat_id}",
        "data": shown.button(label)["callback_data"],
    }
    return {"update_id": next(_update_ids), "callback_query": query}


def callback_update(shown: Shown, button: str, *, sender: dict[str, Any] | None = None) -> Any:
    """The update a user's click on a button of the bot's message `shown` makes."""
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": str(next(_update_ids)),
            "from": sender or user(),
            "chat_instance": f"chat-{shown.chat_id}",
            "message": {**_message_json(shown), "reply_markup": shown.buttons},
            "data": shown.button(button)["callback_data"],
        },
    }


def bot_message(shown: Shown) -> dict[str, Any]:
    """The bot's message, as a reply_to_message in a user's update."""
    return _message_json(shown)


def _entities(text: str) -> list[dict[str, Any]]:
    entities = []
    if command := re.match(r"/\w+(@\w+)?", text):
        entities.append({"type": "bot_command", "offset": 0, "length": len(command[0])})
    for mention in re.finditer(r"(?<!\w)@\w+", text):
        offset = utf16_length(text[: mention.start()])
        if not (command and mention.start() < command.end()):
            entities.append({"type": "mention", "offset": offset, "length": len(mention[0])})
    return entities


# --- a botkit bot running against the fake ---------------------------------------------

FAST = Timing(
    edit_interval=0.05,
    group_edit_interval=0.1,
    typing_interval=0.05,
    poll_timeout=2.0,
    shutdown_timeout=5.0,
)


def telegram_settings(api: FakeBotAPI, **telegram: Any) -> Settings:
    return Settings(
        store={"url": "memory://"},
        telegram={"bot_token": api.token, "base_url": api.base_url, **telegram},
    )


@asynccontextmanager
async def running(
    api: FakeBotAPI,
    bot: BotDefinition,
    *,
    responder: Responder | None = None,
    webhook_url: str | None = None,
    timing: Timing = FAST,
    desks: Mapping[str, Desk] | None = None,
) -> AsyncIterator[tuple[TelegramChannel, BotApp]]:
    """The bot on its Telegram channel, talking to `api`, until the block ends."""
    async with BotApp(settings=telegram_settings(api), bots=[bot], desks=desks) as app:
        if responder is not None:
            app.pipelines[bot.name].responder = responder
        channel = TelegramChannel(app, webhook_url=webhook_url, timing=timing)
        task = asyncio.create_task(channel.run())
        try:
            ready = "setWebhook" if webhook_url else "getUpdates"
            await api.until(lambda: task.done() or api.called(ready))
            if task.done():
                task.result()
            yield channel, app
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await channel.aclose()


class ScriptedResponder:
    """Answers every prompt with `answer(question)`, streamed in `chunk`-sized deltas with
    `pause` seconds between them; waits for `gate`, or for `gates[question]`, before answering."""

    def __init__(
        self,
        answer: str | Callable[[str], str],
        *,
        chunk: int = 10_000,
        pause: float = 0.0,
        gate: asyncio.Event | None = None,
        gates: dict[str, asyncio.Event] | None = None,
    ) -> None:
        self.answer = answer
        self.chunk = chunk
        self.pause = pause
        self.gate = gate
        self.gates = gates or {}
        self.questions: list[str] = []

    async def _text(self, prompt: Prompt) -> str:
        question = prompt.message.text
        self.questions.append(question)
        gate = self.gates.get(question, self.gate)
        if gate is not None:
            await gate.wait()
        return self.answer(question) if callable(self.answer) else self.answer

    async def complete(self, prompt: Prompt) -> Completion:
        text = await self._text(prompt)
        await asyncio.sleep(self.pause)
        return Completion(text=text)

    async def stream(self, prompt: Prompt) -> AsyncIterator[str | Completion]:
        text = await self._text(prompt)
        for start in range(0, len(text), self.chunk):
            yield text[start : start + self.chunk]
            await asyncio.sleep(self.pause)
        yield Completion(text=text)
