"""One cell of the client benchmark, in its own process: one client, one load, measured.

    python -m bench.client_cell CLIENT BASE_URL --concurrency 64 --mode plain --seconds 2

Prints {"requests": n, "wall": s, "cpu": s} as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from botkit.cli import run_async

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are the support assistant of Nimbus Notes. " * 8},
    {"role": "user", "content": "How do I export my notes to PDF?"},
]
Call = Callable[[], Awaitable[None]]


async def botkit_client(base_url: str, stream: bool) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from pydantic import SecretStr

    from botkit.llm.client import CompletionClient
    from botkit.llm.params import ChatParams

    client = CompletionClient(base_url=base_url, api_key=SecretStr("sk-bench"))
    body = ChatParams(max_tokens=200).body("mock-model", MESSAGES, stream=stream)

    async def call() -> None:
        if stream:
            async for _ in client.stream(body):
                pass
        else:
            await client.create(body)

    return call, client.aclose


async def openai_sdk(
    base_url: str, stream: bool, *, on_aiohttp: bool = False
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from openai import AsyncOpenAI, DefaultAioHttpClient

    # On aiohttp (the SDK's own `DefaultAioHttpClient`) it runs on the HTTP stack botkit
    # uses: the fair peer. On its default httpx transport it is what most users run.
    http_client = DefaultAioHttpClient() if on_aiohttp else None
    client = AsyncOpenAI(
        base_url=base_url, api_key="sk-bench", max_retries=0, http_client=http_client
    )

    async def call() -> None:
        if stream:
            events = await client.chat.completions.create(
                model="mock-model",
                messages=MESSAGES,
                max_tokens=200,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in events:
                pass
        else:
            await client.chat.completions.create(
                model="mock-model",
                messages=MESSAGES,
                max_tokens=200,
            )

    return call, client.close


async def plain_httpx(base_url: str, stream: bool) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))
    url = f"{base_url}/chat/completions"
    body = {"model": "mock-model", "messages": MESSAGES, "max_tokens": 200, "stream": stream}

    async def call() -> None:
        if stream:
            async with client.stream("POST", url, json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        json.loads(line[6:])
        else:
            response = await client.post(url, json=body)
            response.json()

    return call, client.aclose


async def bare_aiohttp(base_url: str, stream: bool) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    url = f"{base_url}/chat/completions"
    data = orjson.dumps(
        {"model": "mock-model", "messages": MESSAGES, "max_tokens": 200, "stream": stream}
    )
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    async def call() -> None:
        async with session.post(url, data=data, headers=headers) as response:
            if stream:
                async for line in response.content:
                    if line.startswith(b"data: {"):
                        orjson.loads(line[6:])
            else:
                orjson.loads(await response.read())

    return call, session.close


async def openai_sdk_aiohttp(
    base_url: str, stream: bool
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    return await openai_sdk(base_url, stream, on_aiohttp=True)


CLIENTS = {
    "botkit": botkit_client,
    "openai": openai_sdk,
    "openai-aiohttp": openai_sdk_aiohttp,
    "httpx": plain_httpx,
    "aiohttp": bare_aiohttp,
}


async def measure(
    client: str, base_url: str, concurrency: int, stream: bool, seconds: float
) -> dict[str, float]:
    call, close = await CLIENTS[client](base_url, stream)
    try:
        # Warm up: open the connections and JIT-free caches first.
        await asyncio.gather(*(call() for _ in range(concurrency)))
        done = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await call()
                done += 1

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {
            "requests": done,
            "wall": time.perf_counter() - started,
            "cpu": time.process_time() - cpu,
        }
    finally:
        await close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("base_url")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--mode", choices=["plain", "stream"], default="plain")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    result = run_async(
        measure(args.client, args.base_url, args.concurrency, args.mode == "stream", args.seconds)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
