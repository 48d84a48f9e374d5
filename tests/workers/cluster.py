"""Several real `botkit serve` processes sharing one store, and an LLM they all ask.

Each worker is a subprocess started as an operator would (`botkit serve … --port P`
with its settings in the environment), stopped with SIGTERM or killed with SIGKILL.
The LLM is an OpenAI-speaking server in the test's own process that answers
"re: <question>" after a delay and records every request.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.loopback import LoopbackServer, free_port

KEY = "cluster-key"


@dataclass
class EchoLLM:
    """Answers each question with "re: <question>" after `delay` seconds."""

    delay: float = 0.05
    requests: list[list[dict[str, str]]] = field(default_factory=list)
    port: int = 0
    stall: int = 0
    """How many of the first requests never get an answer (their worker is to be killed)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _completions(self, request: Request) -> Response:
        body = json.loads(await request.body())
        messages = body["messages"]
        self.requests.append(messages)
        await asyncio.sleep(3600 if len(self.requests) <= self.stall else self.delay)
        text = f"re: {messages[-1]['content']}"
        if body.get("stream"):
            chunk = {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "model": "m"}
            events = [
                {**chunk, "choices": [{"index": 0, "delta": {"content": text}}]},
                {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            ]
            sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return Response(sse, media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-echo",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            }
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[EchoLLM]:
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        server = LoopbackServer(app, timeout_graceful_shutdown=0)
        await server.start()
        self.port = server.port
        try:
            yield self
        finally:
            await server.stop()


@dataclass
class Worker:
    """One `botkit serve` process."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **options: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {KEY}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **options)

    async def until_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"worker exited:\n{self.log.read_text()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"worker not ready:\n{self.log.read_text()}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            for _ in range(300):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                self.process.kill()
        self.process.wait(10)


def start_worker(
    home: Path,
    bots: list[str],
    env: Mapping[str, str],
    *,
    name: str,
    channels: list[str] | tuple[str, ...],
) -> Worker:
    port = free_port()
    log = home / f"{name}.log"
    command = [sys.executable, "-m", "botkit", "serve", *bots, "--port", str(port)]
    for channel in channels:
        command += ["--channel", channel]
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BOTKIT_", "OPENAI_", "TELEGRAM_", "SLACK_"))
    }
    environment |= {"BOTKIT_HOME": str(home), "BOTKIT_WEB_API_KEYS": KEY, **env}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    return Worker(port, process, log)


@asynccontextmanager
async def cluster(
    home: Path,
    bots: list[str],
    env: Mapping[str, str],
    *,
    size: int = 3,
    channels: tuple[str, ...] = ("web",),
) -> AsyncIterator[list[Worker]]:
    """`size` workers serving `bots` on `channels`, all on the store `env` names."""
    workers = [
        start_worker(home, bots, env, name=f"worker-{n}", channels=list(channels))
        for n in range(size)
    ]
    try:
        await asyncio.gather(*(w.until_ready() for w in workers))
        yield workers
    finally:
        await asyncio.gather(*(w.stop() for w in workers))
