"""A worker killed with SIGKILL in the middle of a burst, then restarted: every message any
worker acknowledged (a 2xx) is in its conversation's history and answered exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from pathlib import Path

import httpx

from tests.workers.cluster import EchoLLM, cluster, start_worker

SESSIONS = 30
MESSAGES = 10
IN_FLIGHT = 3


async def test_a_killed_worker_loses_no_acknowledged_message(
    cluster_home: Path, shared_store: dict[str, str]
) -> None:
    acknowledged: set[str] = set()
    async with EchoLLM(delay=0.05).running() as llm:
        env = {
            **shared_store,
            "BOTKIT_LLM_BASE_URL": llm.base_url,
            "BOTKIT_LLM_API_KEY": "sk-x",
            "BOTKIT_STORE_LEASE": "1.5",
        }
        async with (
            cluster(cluster_home, ["shop"], env) as workers,
            contextlib.AsyncExitStack() as stack,
        ):
            clients = [await stack.enter_async_context(w.client()) for w in workers]
            sessions = [
                (await clients[0].post("/v1/sessions", json={})).json()["session_id"]
                for _ in range(SESSIONS)
            ]

            async def send(session: str, text: str, k: int) -> None:
                try:
                    response = await clients[k % len(clients)].post(
                        f"/v1/sessions/{session}/messages", json={"message": text}
                    )
                except httpx.TransportError:
                    return  # the killed worker's connections: not acknowledged
                if response.status_code == 200:
                    acknowledged.add(text)

            async def converse(number: int, session: str) -> None:
                gate = asyncio.Semaphore(IN_FLIGHT)

                async def one(k: int) -> None:
                    async with gate:
                        await asyncio.sleep(random.uniform(0, 0.02))
                        await send(session, f"s{number} q{k}", k)

                await asyncio.gather(*(one(k) for k in range(MESSAGES)))

            burst = asyncio.gather(*(converse(n, s) for n, s in enumerate(sessions)))
            await asyncio.sleep(0)
            while len(llm.requests) < SESSIONS * MESSAGES // 3:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            workers[1].kill()  # mid-burst, with messages accepted and in flight
            await burst
            # Restarted, as an orchestrator would; it and the others take up what was left.
            workers[1] = start_worker(
                cluster_home, ["shop"], env, name="worker-1-again", channels=["web"]
            )
            await workers[1].until_ready()
            histories: dict[str, list[tuple[str, str]]] = {}
            for _ in range(300):  # until the killed worker's messages are answered
                for session in sessions:
                    state = (await clients[0].get(f"/v1/sessions/{session}")).json()
                    histories[session] = [(m["role"], m["content"]) for m in state["messages"]]
                questions = [c for h in histories.values() for r, c in h if r == "user"]
                answers = [c for h in histories.values() for r, c in h if r == "assistant"]
                if len(answers) == len(questions):
                    break
                await asyncio.sleep(0.1)

    assert len(acknowledged) > SESSIONS * MESSAGES // 2  # most went through
    # (the killed worker had accepted more than it acknowledged: others answered those)
    questions = Counter(c for h in histories.values() for r, c in h if r == "user")
    answers = Counter(c for h in histories.values() for r, c in h if r == "assistant")
    assert all(count == 1 for count in questions.values()), "a message was stored twice"
    assert all(count == 1 for count in answers.values()), "a message was answered twice"
    assert acknowledged <= set(questions), "an acknowledged message was lost"
    assert {f"re: {q}" for q in questions} == set(answers), "a stored message went unanswered"
