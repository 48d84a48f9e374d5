"""The console channel: talk to a bot in a terminal, or pipe questions through it.

Each answer is written as it arrives. On a terminal it is rendered as Markdown
(bold, lists, code) with `rich`, imported only then. Piped, it stays plain
text: each line of input is one message, and each answer is written followed
by one empty line before the next line is read, which scripts rely on.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, TextIO

from botkit.adapters import Handler
from botkit.messages import IncomingMessage
from botkit.pipeline import parse_command

if TYPE_CHECKING:
    from rich.console import Console

    from botkit.pipeline import Pipeline

CHANNEL = "console"
RELAYED = "(Sent to the person handling this conversation.)"
NO_DESK = (
    "(botkit chat: {bot} has no [handoff] table in bots/{bot}.toml, so nobody can take "
    "over; a customer gets the fallback text above.)"
)

Answerer = Callable[[IncomingMessage], AsyncIterable[str]]
"""A message in, its answer out as text deltas: `answers(pipeline)`, or
`in_one_piece(handler)`."""


def answers(pipeline: Pipeline) -> Answerer:
    """The pipeline's answers, streamed unless the bot says `streaming = false`, with what a
    person at a terminal should know that a customer is not told: that a message went to
    the person handling the conversation, or that the bot has no desk for `/human`."""

    async def answer(message: IncomingMessage) -> AsyncIterator[str]:
        stream = pipeline.stream(message, incremental=pipeline.bot.settings.streaming)
        async for delta in stream:
            yield delta
        reply = stream.reply
        if reply is None:
            return
        if reply.kind == "relayed":
            yield RELAYED
        elif reply.kind == "fallback" and parse_command(message.text.strip()) in (
            "/human",
            "/agent",
        ):
            yield "\n\n" + NO_DESK.format(bot=pipeline.bot.name)

    return answer


def in_one_piece(handler: Handler) -> Answerer:
    """The answers of `handler` as one delta each (for a bot with `streaming = false`)."""

    async def answer(message: IncomingMessage) -> AsyncIterator[str]:
        reply = await handler(message)
        if reply is not None:
            yield reply.text

    return answer


class ConsoleAdapter:
    """One user talking to one bot through stdin and stdout.

    `interactive` shows a prompt and the welcome; `markdown` renders answers for a
    terminal (both only when stdout is one).
    """

    def __init__(
        self,
        *,
        answer: Answerer,
        bot: str,
        user_id: str,
        stdin: TextIO,
        stdout: TextIO,
        interactive: bool,
        markdown: bool = False,
    ) -> None:
        self._answer = answer
        self._bot = bot
        self._user_id = user_id
        self._stdin = stdin
        self._stdout = stdout
        self._interactive = interactive
        self._markdown = markdown
        self._console: Console | None = None
        self._lines = _LineReader(self._read_blocking)

    def to_incoming(self, text: str) -> IncomingMessage:
        return IncomingMessage(
            channel=CHANNEL,
            bot=self._bot,
            conversation_id=self._user_id,
            user_id=self._user_id,
            user_name=self._user_id,
            text=text,
        )

    async def run(self) -> None:
        if self._interactive:
            await self._say("/start")
        while (line := await self._lines.readline()) is not None:
            await self._say(line)

    def _read_blocking(self) -> str | None:
        if self._interactive:
            try:
                return input("you › ")
            except EOFError:
                self._stdout.write("\n")
                return None
        line = self._stdin.readline()
        return line.rstrip("\r\n") if line else None

    async def _say(self, text: str) -> None:
        deltas = self._answer(self.to_incoming(text))
        if self._markdown:
            await self._show_markdown(deltas)
        else:
            await self._show_plain(deltas)

    async def _show_plain(self, deltas: AsyncIterable[str]) -> None:
        started = False
        async for delta in deltas:
            if not started and self._interactive:
                self._stdout.write(f"{self._bot} › ")
            started = True
            self._stdout.write(delta)
            self._stdout.flush()
        if started:  # an empty message has no answer, and no blank line
            self._stdout.write("\n\n")
            self._stdout.flush()

    async def _show_markdown(self, deltas: AsyncIterable[str]) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.markdown import Markdown
        from rich.text import Text

        if self._console is None:
            self._console = Console(file=self._stdout)
        console = self._console
        parts: list[str] = []
        live = None
        try:
            async for delta in deltas:
                parts.append(delta)
                if live is None:
                    if self._interactive:
                        console.print(Text(f"{self._bot} ›", style="bold"))
                    # Markdown is parsed at each refresh (ten a second), not at each delta.
                    live = Live(
                        console=console,
                        get_renderable=lambda: Markdown("".join(parts)),
                        refresh_per_second=10,
                    )
                    live.start()
        finally:
            if live is not None:
                live.stop()  # renders the whole answer once more, however long
        if live is not None:
            console.print()


class _LineReader:
    """Reads lines on a daemon thread, one per request.

    A daemon thread, unlike `asyncio.to_thread`, never keeps the process alive
    waiting for a line after Ctrl-C; reading only on request keeps the prompt
    from appearing before the previous reply.
    """

    def __init__(self, read: Callable[[], str | None]) -> None:
        self._read = read
        self._requests: queue.SimpleQueue[asyncio.Future[str | None]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="botkit-console", daemon=True).start()

    async def readline(self) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._requests.put(future)
        return await future

    def _serve(self) -> None:
        while True:
            future = self._requests.get()
            line = self._read()
            future.get_loop().call_soon_threadsafe(_resolve, future, line)
            if line is None:
                return


def _resolve(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)
