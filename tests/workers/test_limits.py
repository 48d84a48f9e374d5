"""Limits shared by workers: N workers send what one would."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.workers.cluster import EchoLLM, cluster


async def test_two_workers_share_the_requests_per_minute(
    cluster_home: Path, shared_store: dict[str, str]
) -> None:
    async with EchoLLM(delay=0).running() as llm:
        env = {
            **shared_store,
            "BOTKIT_LLM_BASE_URL": llm.base_url,
            "BOTKIT_LLM_API_KEY": "sk-x",
            "BOTKIT_LLM_REQUESTS_PER_MINUTE": "6",
        }
        async with cluster(cluster_home, ["shop"], env, size=2) as workers:
            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(w.client()) for w in workers]
                sessions = [
                    (await clients[0].post("/v1/sessions", json={})).json()["session_id"]
                    for _ in range(12)
                ]
                sends = [
                    asyncio.create_task(
                        clients[n % 2].post(
                            f"/v1/sessions/{session}/messages", json={"message": f"q{n}"}
                        )
                    )
                    for n, session in enumerate(sessions)
                ]
                for _ in range(500):
                    if len(llm.requests) >= 6:
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(2.0)  # the seventh is due ten seconds after the first
                seen = len(llm.requests)
                for send in sends:
                    send.cancel()
                await asyncio.gather(*sends, return_exceptions=True)
            for worker in workers:  # their replies would wait minutes for the budget
                worker.kill()
    assert seen == 6
