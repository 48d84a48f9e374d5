"""The console channel: talk to a bot in a terminal, or pipe questions through it.

With piped input each line is one message, and each reply is written followed
by one empty line before the next line is read. Bytes that are not valid in the
input's encoding become U+FFFD (�), so every line is answered.
"""

from __future__ import annotations

import asyncio
import io
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
        if isinstance(stdin, io.TextIOWrapper):
            # sys.stdin would hand over undecodable bytes as lone surrogates, which no
            # store can encode, or raise; this is where a wrong byte can be forgiven.
            stdin.reconfigure(errors="replace")
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
        # Any other lone surrogate (from a stream we could not reconfigure) becomes "?".
        text = text.encode("utf-8", "replace").decode("utf-8")
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
            try:
                line = self._read()
            except Exception as err:  # handed to the reader, rather than waiting forever
                future.get_loop().call_soon_threadsafe(_resolve, future, err)
                return
            future.get_loop().call_soon_threadsafe(_resolve, future, line)
            if line is None:
                return


def _resolve(future: asyncio.Future[str | None], line: str | Exception | None) -> None:
    if future.done():
        return
    if isinstance(line, Exception):
        future.set_exception(line)
    else:
        future.set_result(line)
