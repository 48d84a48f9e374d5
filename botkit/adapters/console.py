"""The console channel: talk to a bot in a terminal, or pipe questions through it.

With piped input each line is one message, and each reply is written followed
by one empty line before the next line is read.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import TextIO

from botkit.adapters import Handler
from botkit.messages import IncomingMessage

CHANNEL = "console"


class ConsoleAdapter:
    """One user talking to one bot through stdin and stdout."""

    def __init__(
        self,
        *,
        handler: Handler,
        bot: str,
        user_id: str,
        stdin: TextIO,
        stdout: TextIO,
        interactive: bool,
    ) -> None:
        self._handler = handler
        self._bot = bot
        self._user_id = user_id
        self._stdin = stdin
        self._stdout = stdout
        self._interactive = interactive
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
        reply = await self._handler(self.to_incoming(text))
        if reply is None:
            return
        prefix = f"{self._bot} › " if self._interactive else ""
        self._stdout.write(f"{prefix}{reply.text}\n\n")
        self._stdout.flush()


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
