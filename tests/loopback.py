"""A test's fake platform API on 127.0.0.1: uvicorn on a free port, in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackServer:
    """Serves `app` until `stop()`; `config` goes to `uvicorn.Config` (e.g. `ws="wsproto"`;
    `lifespan="on"` for an app whose lifespan opens what it serves)."""

    def __init__(self, app: ASGIApp, **config: Any) -> None:
        self._config = uvicorn.Config(
            app, **({"log_level": "critical", "lifespan": "off"} | config)
        )
        self._server = uvicorn.Server(self._config)
        self._server.capture_signals = _no_signals  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        sock = socket.socket()
        # Accepted connections inherit it: without it a response written in two parts
        # waits for the client's delayed ACK (40 ms a request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        assert self._task is not None, "the server was never started"
        self._server.should_exit = True
        await self._task


@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    # The test runner owns the signals, not the fake server.
    yield
