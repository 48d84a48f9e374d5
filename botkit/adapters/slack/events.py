"""Slack's requests and events in, `IncomingMessage` out: is a request Slack's, which
messages the bot answers, and where.

A request is Slack's when its signature holds; it is checked on the raw bytes,
before anything parses them; then its fields are (`payloads.py`), and a request
with one of a type botkit cannot read is acknowledged, logged in one line, ignored.

    a DM                              → answered in the DM; one conversation per DM
    an app_mention, or a message
    that mentions the bot             → answered in the message's thread
    a message in a thread the bot
    took part in                      → answered there without a new mention
    anything a bot wrote (this one
    included), edits, deletions,
    joins, hidden messages            → ignored

In channels each thread is one conversation (channel + thread_ts). Slack's
markup (`<@U123>`, `<https://…|label>`, `&amp;`) becomes plain text here, so
nothing Slack-specific travels inward.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request

from botkit.adapters.slack.reply import Destination
from botkit.messages import IncomingMessage

CHANNEL = "slack"
ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}
"""Message subtypes a person writes; every other (edits, deletions, joins…) is ignored."""
MAX_AGE = 300
"""Seconds a signed request stays valid, against replays (Slack's own advice)."""
MAX_BODY_BYTES = 1_000_000
_MARKUP = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in the workspace (auth.test), to recognise its own messages and mentions."""

    user_id: str
    bot_id: str | None = None


def is_direct(event: Mapping[str, Any]) -> bool:
    return event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")


def is_ignored(event: Mapping[str, Any], me: BotIdentity) -> bool:
    """Messages no person wrote to the bot: any bot's (its own included), edits, deletions,
    joins and other subtypes, hidden messages, and events that are not messages."""
    return (
        event.get("type") not in ("message", "app_mention")
        or event.get("subtype") not in ANSWERED_SUBTYPES
        or bool(event.get("hidden"))
        or bool(event.get("bot_id") or event.get("bot_profile"))
        or not isinstance(event.get("user"), str)
        or event.get("user") == me.user_id
        or not isinstance(event.get("channel"), str)
        or not isinstance(event.get("ts"), str)
        or not isinstance(event.get("text") or "", str)
    )


def is_addressed(event: Mapping[str, Any], me: BotIdentity) -> bool:
    """A DM, or a message that mentions the bot; other channel messages are answered only
    in a thread the bot is already part of."""
    text = str(event.get("text") or "")
    return (
        is_direct(event)
        or event.get("type") == "app_mention"
        or f"<@{me.user_id}>" in text
        or f"<@{me.user_id}|" in text
    )


def to_incoming(event: Mapping[str, Any], *, bot: str, me: BotIdentity) -> IncomingMessage | None:
    """The message a Slack event carries, or None when the bot must not answer it.

    Ignored kinds (see `is_ignored`) and channel messages that neither mention
    the bot nor sit in a thread are None. One conversation per DM; in channels,
    one per thread. A message with only files gives empty `text`. `event` is one
    `payloads.check_event` passed (the Slack app checks each before its listeners).
    """
    if is_ignored(event, me):
        return None
    channel, ts = event["channel"], event["ts"]
    thread_ts = event.get("thread_ts")
    if not is_direct(event) and not is_addressed(event, me) and thread_ts in (None, ts):
        return None
    try:
        timestamp = datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError):
        return None
    profile = event.get("user_profile") or {}
    return IncomingMessage(
        channel=CHANNEL,
        bot=bot,
        conversation_id=channel if is_direct(event) else f"{channel}:{thread_ts or ts}",
        user_id=event["user"],
        text=plain_text(str(event.get("text") or ""), me),
        user_name=profile.get("display_name") or profile.get("real_name") or None,
        message_id=ts,
        timestamp=timestamp,
    )


def plain_text(text: str, me: BotIdentity) -> str:
    """Slack's message markup as the plain text a person typed, without the bot's mention."""

    def replace(match: re.Match[str]) -> str:
        target, label = match[1], match[2]
        if target.startswith("@"):
            return "" if target[1:] == me.user_id else f"@{label or target[1:]}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            return label or f"@{target[1:].split('^', 1)[0]}"
        if label and label != target.removeprefix("mailto:"):
            return f"{label} ({target})"
        return target.removeprefix("mailto:")

    return html.unescape(_MARKUP.sub(replace, text)).strip()


def message_key(bot: str, event: Mapping[str, Any]) -> str:
    """What a re-delivered event and the `app_mention`/`message` pair of one mention share."""
    return f"slack:{bot}:message:{event['channel']}:{event['ts']}"


def thread_key(bot: str, channel: str, thread_ts: str) -> str:
    return f"slack:{bot}:thread:{channel}:{thread_ts}"


def destination(event: Mapping[str, Any]) -> Destination:
    """A DM is answered in the DM (in the thread, if the user wrote in one); a channel
    message in its thread, which the answer starts when there is none yet."""
    thread_ts = event.get("thread_ts")
    if is_direct(event):
        return Destination(event["channel"], thread_ts)
    return Destination(event["channel"], thread_ts or event["ts"])


# --- requests -------------------------------------------------------------------------


async def read_body(request: Request) -> bytes | None:
    """The body, or None when it is larger than any request Slack sends."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def signature_problem(
    verifier: SignatureVerifier, headers: Mapping[str, str], body: bytes
) -> str | None:
    """Why a request is not Slack's, or None when its signature holds."""
    headers = {name.lower(): value for name, value in headers.items()}
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not _DIGITS.fullmatch(timestamp) or abs(time.time() - int(timestamp)) > MAX_AGE:
        return "stale or invalid X-Slack-Request-Timestamp"
    try:
        text = body.decode("utf-8")  # the verifier decodes it too, and raises on bad bytes
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if not verifier.is_valid(text, timestamp, signature):
        return "wrong X-Slack-Signature"
    return None


def is_form(content_type: str) -> bool:
    """A slash command or an interactivity payload; Events API bodies are JSON."""
    return "application/x-www-form-urlencoded" in content_type


def parse_request(body: bytes, content_type: str) -> dict[str, Any]:
    """The request as bolt will read it; ValueError for anything not in a shape Slack sends
    (a JSON object, or a form with a command or an object as `payload`). Its fields are
    `payloads.check_request`'s business."""
    try:
        text = body.decode("utf-8")
        if is_form(content_type):
            form = {key: vs[-1] for key, vs in parse_qs(text, keep_blank_values=True).items()}
            if "payload" in form:
                if not isinstance(json.loads(form["payload"]), dict):
                    raise ValueError("payload is not an object")
            elif "command" not in form and "ssl_check" not in form:
                raise ValueError("a form that is neither a command nor a payload")
            return form
        data = json.loads(text)
    except RecursionError:  # json raises it for nesting deeper than Python's stack
        raise ValueError("nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data
