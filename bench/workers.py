"""Case 8: one worker against two, on one Redis: what the conversation locks and the inbox
cost, and what a second worker brings.

`botkit serve bench --channel web` runs as one or two processes; the mock LLM answers
after 50 ms. N sessions each send M messages one after another, all sessions at once,
spread over the workers (message k of a session to worker k mod W). Rows:

- one worker on `memory://`: no lock or inbox leaves the process (the floor);
- one worker on Redis: every message takes the conversation's lock in Redis and is
  kept in its inbox (a stream entry) until answered;
- two workers on Redis: the same, with one conversation's messages alternating between
  the processes, so every message waits for the other worker's lock to be released.

"added ms" is each message's latency minus the mock's 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.support import (
    CLIENT_CPU,
    Table,
    free_port,
    median,
    mock_llm,
    percentile,
    pinned,
    redis_server,
    wait_for,
)

LATENCY_MS = 50
API_KEY = "bench-key"


def run(quick: bool) -> Table:
    sessions, messages = (40, 3) if quick else (200, 5)
    table = Table(
        "Many workers on one store",
        f"botkit serve --channel web, one or two processes; {sessions} sessions each send "
        f"{messages} messages one after another, all sessions at once, message k of a session "
        f"to worker k mod W; mock LLM answering after {LATENCY_MS} ms. One worker is pinned to "
        "one core; two workers are not pinned (the mock LLM and this load generator share the "
        "two cores with them)",
        ["workers", "store", "messages/s", "added ms p50", "added ms p99", "wall s"],
    )
    from bench.bots import make_home
    from bench.data import workload

    table.notes.append(f"FAQ: {workload()}; every message asks 'How do I export my notes?'")
    with tempfile.TemporaryDirectory() as tmp, mock_llm(LATENCY_MS) as llm_url:
        home = make_home(Path(tmp), 100)
        with redis_server() as redis_url:
            for workers, store in ((1, "memory://"), (1, redis_url), (2, redis_url)):
                result = _measure(home, llm_url, store, workers, sessions, messages)
                added = [latency - LATENCY_MS / 1000 for latency in result["latencies"]]
                table.add(
                    workers,
                    "memory" if store.startswith("memory") else "Redis",
                    len(added) / result["wall"],
                    median(added) * 1000,
                    percentile(added, 0.99) * 1000,
                    result["wall"],
                )
    return table


def _measure(
    home: Path, llm_url: str, store: str, workers: int, sessions: int, messages: int
) -> dict[str, Any]:
    ports = [free_port() for _ in range(workers)]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOTKIT_")},
        "BOTKIT_HOME": str(home),
        "BOTKIT_STORE_URL": store,
        "BOTKIT_STORE_PREFIX": f"bench{time.time_ns()}",
        "BOTKIT_LLM_BASE_URL": llm_url,
        "BOTKIT_LLM_API_KEY": "sk-bench",
        "BOTKIT_WEB_API_KEYS": API_KEY,
    }
    botkit = str(Path(sys.executable).parent / "botkit")
    processes = [
        subprocess.Popen(
            [
                *(pinned(CLIENT_CPU) if workers == 1 else []),
                botkit,
                "serve",
                "bench",
                "--channel",
                "web",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_for(f"http://127.0.0.1:{port}/readyz")
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        return asyncio.run(_converse(urls, sessions, messages))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


async def _converse(urls: list[str], sessions: int, messages: int) -> dict[str, Any]:
    import aiohttp

    headers = {"authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=sessions * 2)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as http:

        async def create(i: int) -> str:
            async with http.post(f"{urls[0]}/v1/sessions", json={"user": f"u{i}"}) as r:
                return str((await r.json())["session_id"])

        ids = await asyncio.gather(*(create(i) for i in range(sessions)))
        latencies: list[float] = []

        async def converse(session: str) -> None:
            for k in range(messages):
                started = time.perf_counter()
                url = f"{urls[k % len(urls)]}/v1/sessions/{session}/messages"
                async with http.post(url, json={"message": "How do I export my notes?"}) as r:
                    body = await r.json()
                    if r.status != 200 or not body.get("reply"):
                        raise RuntimeError(f"HTTP {r.status}: {body}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(converse(s) for s in ids))
        return {"wall": time.perf_counter() - started, "latencies": latencies}
