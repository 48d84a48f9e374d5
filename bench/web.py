"""Case 4: the burst of case 3 through the web channel over real HTTP.

`botkit serve bench --channel web` runs as its own process (on the measured core) with
the mock LLM answering after 500 ms; this process creates N sessions, then posts one
message to each at once, and measures each reply's latency. What botkit adds is the
latency minus the mock's 500 ms.
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
    SERVER_CPU,
    Table,
    free_port,
    median,
    mock_llm,
    percentile,
    pinned,
    wait_for,
)

LATENCY_MS = 500
API_KEY = "bench-key"


def run(quick: bool) -> Table:
    sizes = (100,) if quick else (100, 1_000)
    table = Table(
        "Through the web channel",
        f"botkit serve --channel web in its own process on one core, the mock LLM (answering "
        f"after {LATENCY_MS} ms) and this load generator on the other; N sessions each post "
        "one message at once over HTTP; default settings",
        ["users", "replies/s", "added ms p50", "added ms p99", "wall s"],
    )
    from bench.bots import make_home
    from bench.data import workload

    table.notes.append(f"FAQ: {workload()}; every session asks 'How do I export my notes?'")

    with tempfile.TemporaryDirectory() as tmp, mock_llm(LATENCY_MS) as llm_url:
        home = make_home(Path(tmp), 100)
        for users in sizes:
            port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("BOTKIT_")},
                "BOTKIT_HOME": str(home),
                "BOTKIT_STORE_URL": f"sqlite:///{tmp}/web-{users}.db",
                "BOTKIT_LLM_BASE_URL": llm_url,
                "BOTKIT_LLM_API_KEY": "sk-bench",
                "BOTKIT_WEB_API_KEYS": API_KEY,
            }
            server = subprocess.Popen(
                [
                    *pinned(CLIENT_CPU),
                    str(Path(sys.executable).parent / "botkit"),
                    "serve",
                    "bench",
                    "--channel",
                    "web",
                    "--port",
                    str(port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            # The load generator shares the mock LLM's core, as the other cases' servers
            # do: botkit's core runs botkit alone.
            pin = hasattr(os, "sched_setaffinity")
            own_cpus = os.sched_getaffinity(0) if pin else set()
            try:
                wait_for(f"http://127.0.0.1:{port}/healthz")
                if pin:
                    os.sched_setaffinity(0, {SERVER_CPU})
                result = asyncio.run(burst(f"http://127.0.0.1:{port}", users))
            finally:
                if pin:
                    os.sched_setaffinity(0, own_cpus)
                server.terminate()
                server.wait(timeout=30)
            added = [latency - LATENCY_MS / 1000 for latency in result["latencies"]]
            table.add(
                users,
                users / result["wall"],
                median(added) * 1000,
                percentile(added, 0.99) * 1000,
                result["wall"],
            )
    return table


async def burst(base: str, users: int) -> dict[str, Any]:
    import aiohttp

    headers = {"authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=users)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as http:

        async def create(i: int) -> str:
            async with http.post("/v1/sessions", json={"bot": "bench", "user": f"u{i}"}) as r:
                return str((await r.json())["session_id"])

        sessions = await asyncio.gather(*(create(i) for i in range(users)))

        async def ask(session: str) -> float:
            started = time.perf_counter()
            async with http.post(
                f"/v1/sessions/{session}/messages", json={"message": "How do I export my notes?"}
            ) as r:
                body = await r.json()
                if r.status != 200 or not body.get("reply"):
                    raise RuntimeError(f"HTTP {r.status}: {body}")
            return time.perf_counter() - started

        started = time.perf_counter()
        latencies = await asyncio.gather(*(ask(s) for s in sessions))
        return {"wall": time.perf_counter() - started, "latencies": latencies}
