"""Posting one reply in one Slack conversation: a placeholder at once, then the answer.

The placeholder is replaced with `chat.update` as the answer arrives; text that
outgrows one message continues in further messages of the same thread. Rate
limits are the Web API client's business (slack_sdk's retry handler waits out
`Retry-After`); what is left here is that a partial update that fails is
skipped, while the final text must arrive or its failure is raised.

In a thread, an answer is streamed as Slack's streaming message instead
(`chat.startStream`, `appendStream`, `stopStream`; slack-sdk 3.37), Markdown that
Slack renders as it grows; when the SDK lacks those methods or Slack refuses them,
the placeholder and its edits it is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from botkit.adapters.formatting import split_text
from botkit.adapters.slack.format import UPDATE_LIMIT, to_pieces

logger = logging.getLogger(__name__)

PLACEHOLDER = ":hourglass_flowing_sand:"
SECTION_LIMIT = 3_000
"""Characters of mrkdwn a section block takes."""

Buttons = Callable[[], dict[str, Any] | None]
"""The actions block to put under the whole answer (feedback buttons), asked when it is
complete."""


class RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's wait for `Retry-After` on a 429, said in the log."""

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is not None:
            headers = {key.lower(): value for key, value in response.headers.items()}
            wait = headers.get("retry-after", "?")
            wait = wait[0] if isinstance(wait, list) else wait
            method = request.url.rsplit("/", 1)[-1]
            logger.warning("Slack rate-limited %s; retrying after %s s", method, wait)
        await super().prepare_for_next_attempt_async(
            state=state, request=request, response=response, error=error
        )


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a reply goes: a channel (or DM) and the thread in it, if any."""

    channel: str
    thread_ts: str | None = None


@dataclass(slots=True)
class _Shown:
    ts: str
    text: str
    buttons: dict[str, Any] | None = None


def with_buttons(mrkdwn: str, buttons: dict[str, Any]) -> list[dict[str, Any]]:
    """The blocks of a message showing `mrkdwn` with an actions block under it."""
    sections = [
        {"type": "section", "text": {"type": "mrkdwn", "text": part}}
        for part in split_text(mrkdwn, SECTION_LIMIT)
    ]
    return [*sections, buttons]


class ReplyWriter:
    """Shows a reply in a conversation: the placeholder becomes its first piece, later pieces
    are posted after it, and each is edited as the text grows."""

    def __init__(
        self,
        client: AsyncWebClient,
        destination: Destination,
        *,
        limit: int = UPDATE_LIMIT,
        buttons: Buttons | None = None,
    ) -> None:
        self._client = client
        self._destination = destination
        self._limit = limit
        self.buttons = buttons
        self._shown: list[_Shown] = []

    async def start(self, placeholder: str = PLACEHOLDER) -> None:
        """Post the placeholder the answer will replace."""
        self._shown.append(_Shown(await self._post(placeholder), placeholder))

    async def show(self, markdown: str, *, final: bool = True) -> None:
        """Make the conversation show `markdown`. A partial text that cannot be shown now is
        skipped (the next one shows the same and more); the final one's failure is raised.
        The final text's last message carries the buttons, if any."""
        try:
            pieces = to_pieces(markdown, self._limit)
            buttons = self.buttons() if final and self.buttons is not None else None
            for index, piece in enumerate(pieces):
                actions = buttons if index == len(pieces) - 1 else None
                if index < len(self._shown):
                    shown = self._shown[index]
                    if shown.text != piece or shown.buttons != actions:
                        await self._update(shown.ts, piece, actions)
                        shown.text, shown.buttons = piece, actions
                else:
                    self._shown.append(_Shown(await self._post(piece, actions), piece, actions))
        except SlackApiError as err:
            if final:
                raise
            logger.debug("skipped a partial update in %s: %s", self._destination.channel, err)

    async def _post(self, text: str, buttons: dict[str, Any] | None = None) -> str:
        response = await self._client.chat_postMessage(
            channel=self._destination.channel,
            thread_ts=self._destination.thread_ts,
            text=text,
            blocks=with_buttons(text, buttons) if buttons else None,
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    async def _update(self, ts: str, text: str, buttons: dict[str, Any] | None = None) -> None:
        await self._client.chat_update(
            channel=self._destination.channel,
            ts=ts,
            text=text,
            blocks=with_buttons(text, buttons) if buttons else None,
        )


STREAM_LIMIT = 12_000
"""Characters one streaming message holds (Slack's limit for a message's Markdown); the
rest of a longer answer follows in further messages of the thread."""
STREAMING_UNAVAILABLE = {
    "unknown_method",
    "not_allowed_token_type",
    "missing_scope",
    "no_permission",
    "method_deprecated",
    "feature_not_enabled",
}
"""Slack's answers to `chat.startStream` that mean it will refuse this app every time."""
_MENTION = re.compile(r"<(?=[!@#])")


class StreamSupport:
    """Whether streaming messages are worth trying: slack-sdk must have `chat_startStream`
    and Slack must not have refused it for this app."""

    def __init__(self) -> None:
        self.available = hasattr(AsyncWebClient, "chat_startStream")

    def refused(self, error: str) -> None:
        if self.available:
            # unknown_method: a Slack-compatible server without streaming; nothing to fix.
            level = logging.INFO if error == "unknown_method" else logging.WARNING
            logger.log(
                level,
                "Slack refused a streaming message (%s); answering by editing messages instead",
                error,
            )
        self.available = False


class StreamWriter:
    """Shows a reply in a thread as one streaming message: started at once (Slack shows it
    being written), its text appended as it arrives, stopped when complete.

    When Slack refuses to start it, the reply is `fallback`'s placeholder and edits.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        destination: Destination,
        fallback: ReplyWriter,
        support: StreamSupport,
        *,
        recipient: tuple[str, str] | None = None,
        limit: int = STREAM_LIMIT,
    ) -> None:
        assert destination.thread_ts is not None, "Slack streams only replies in a thread"
        self._client = client
        self._destination = destination
        self._fallback = fallback
        self._support = support
        self._recipient = recipient  # (user, team): who reads it, needed outside DMs
        self._limit = limit
        self._ts: str | None = None
        self._sent = ""  # the Markdown appended so far
        self._full = False

    async def start(self) -> None:
        """Start the streaming message (or post the fallback's placeholder)."""
        if self._support.available:
            user, team = self._recipient or (None, None)
            try:
                response = await self._client.chat_startStream(
                    channel=self._destination.channel,
                    thread_ts=self._destination.thread_ts or "",
                    recipient_user_id=user,
                    recipient_team_id=team,
                )
                self._ts = str(response["ts"])
                return
            except SlackApiError as err:
                error = str(err.response.get("error"))
                if error in STREAMING_UNAVAILABLE:
                    self._support.refused(error)
                else:
                    logger.info("no streaming message in %s: %s", self._destination.channel, error)
        await self._fallback.start()

    async def show(self, markdown: str, *, final: bool = True) -> None:
        if self._ts is None:
            await self._fallback.show(markdown, final=final)
            return
        markdown = markdown.lstrip()  # as the partial texts were: each starts the same way
        pending = "" if self._full else markdown[len(self._sent) :]
        if not final and pending.endswith("<"):
            pending = pending[:-1]  # a mention's "<" is escaped only once "!", "@" or "#" follow
        if len(self._sent) + len(pending) > self._limit:
            pending = _cut(pending, self._limit - len(self._sent))
            self._full = True
        try:
            if final:
                buttons = self._fallback.buttons() if self._fallback.buttons else None
                await self._client.chat_stopStream(
                    channel=self._destination.channel,
                    ts=self._ts,
                    markdown_text=_escape_mentions(pending) or None,
                    blocks=[buttons] if buttons else None,
                )
            elif pending:
                await self._client.chat_appendStream(
                    channel=self._destination.channel,
                    ts=self._ts,
                    markdown_text=_escape_mentions(pending),
                )
        except SlackApiError as err:
            if final:
                raise
            logger.debug("skipped a streamed update in %s: %s", self._destination.channel, err)
            self._full = False
            return
        self._sent += pending
        if final and (rest := markdown[len(self._sent) :].strip()):
            await self._fallback.show(rest)  # an answer longer than one message


def _escape_mentions(markdown: str) -> str:
    """Markdown in which `<!channel>`, `<@U…>` and `<#C…>` are text, not a notification."""
    return _MENTION.sub("&lt;", markdown)


def _cut(text: str, room: int) -> str:
    """The longest start of `text` within `room` characters that ends a paragraph, else a
    line, else a word."""
    if room <= 0:
        return ""
    for boundary in ("\n\n", "\n", " "):
        at = text.rfind(boundary, 0, room)
        if at > 0:
            return text[: at + len(boundary)]
    return text[:room]
