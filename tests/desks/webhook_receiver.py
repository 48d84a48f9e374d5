"""A helpdesk's webhook endpoint on 127.0.0.1, checking each event's signature with the
verification snippet the README gives (so the snippet is tested, too)."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.loopback import LoopbackServer

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec-test-secret"


def readme_verifier() -> Callable[[bytes, str, str], dict[str, Any]]:
    """`verified_event(body, signature, secret)` from the README's Python snippet."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    [snippet] = [block for block in blocks if "def verified_event" in block]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    verify: Callable[[bytes, str, str], dict[str, Any]] = namespace["verified_event"]
    return verify


class DeskReceiver:
    """Keeps every verified event in `events`; answers the statuses in `answers` first
    (one a request), then 200, keeping the events it answered so in `turned_away`.
    Forged or stale events are counted in `refused`."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.events: list[dict[str, Any]] = []
        self.turned_away: list[dict[str, Any]] = []
        self.attempts = 0
        self.refused = 0
        self.answers: deque[int] = deque()
        self._arrived = asyncio.Event()
        self._verify = readme_verifier()
        self._http = LoopbackServer(
            Starlette(routes=[Route("/hook", self._hook, methods=["POST"])]),
            timeout_graceful_shutdown=0,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}/hook"

    async def __aenter__(self) -> DeskReceiver:
        await self._http.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.stop()

    async def _hook(self, request: Request) -> Response:
        self.attempts += 1
        body = await request.body()
        try:
            event = self._verify(body, request.headers.get("x-botkit-signature", ""), self.secret)
        except ValueError as err:
            self.refused += 1
            return PlainTextResponse(str(err), 401)
        if self.answers:
            self.turned_away.append(event)
            return Response(status_code=self.answers.popleft())
        assert request.headers["x-botkit-event"] == event["type"]
        self.events.append(event)
        self._arrived.set()
        return Response(status_code=204)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]

    async def next(self, kind: str, *, count: int = 1, within: float = 10) -> dict[str, Any]:
        """The `count`th event of this type, once it has arrived."""
        async with asyncio.timeout(within):
            while len(self.of(kind)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.of(kind)[count - 1]
