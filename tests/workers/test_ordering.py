"""Many workers, one conversation: each session's messages spread over three workers, several
in flight at once, are answered one at a time, in one order, each from all that came before."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import httpx

from tests.workers.cluster import EchoLLM, cluster

SESSIONS = 30
MESSAGES = 10
IN_FLIGHT = 3


async def converse(clients: list[httpx.AsyncClient], session: str, number: int) -> None:
    """Send the session's messages round-robin over the workers, a few at a time."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def send(k: int) -> None:
        async with gate:
            await asyncio.sleep(random.uniform(0, 0.02))
            # As a careful client does: a connection that breaks (a kept-alive one the
            # server closed as the request went out) is retried with the same key.
            headers = {"Idempotency-Key": f"{session}-{k}"}
            for attempt in range(3):
                try:
                    response = await clients[k % len(clients)].post(
                        f"/v1/sessions/{session}/messages",
                        json={"message": f"s{number} q{k}"},
                        headers=headers,
                    )
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            assert response.status_code == 200, response.text

    await asyncio.gather(*(send(k) for k in range(MESSAGES)))


async def test_every_history_is_one_ordered_conversation(
    cluster_home: Path, shared_store: dict[str, str]
) -> None:
    async with EchoLLM().running() as llm:
        env = {**shared_store, "BOTKIT_LLM_BASE_URL": llm.base_url, "BOTKIT_LLM_API_KEY": "sk-x"}
        async with cluster(cluster_home, ["shop"], env) as workers:
            async with workers[0].client() as client:
                sessions = [
                    (await client.post("/v1/sessions", json={})).json()["session_id"]
                    for _ in range(SESSIONS)
                ]
            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(w.client()) for w in workers]
                await asyncio.gather(*(converse(clients, s, n) for n, s in enumerate(sessions)))
            histories = []
            async with workers[-1].client() as client:
                for session in sessions:
                    state = (await client.get(f"/v1/sessions/{session}")).json()
                    histories.append([(m["role"], m["content"]) for m in state["messages"]])
        requests = {tuple(m["content"] for m in r[1:]): r for r in llm.requests}

    assert len(llm.requests) == SESSIONS * MESSAGES  # nothing asked twice
    for number, history in enumerate(histories):
        questions = [content for role, content in history if role == "user"]
        assert sorted(questions) == sorted(f"s{number} q{k}" for k in range(MESSAGES))
        assert [role for role, _ in history] == ["user", "assistant"] * MESSAGES
        for index in range(1, len(history), 2):
            question, answer = history[index - 1][1], history[index][1]
            assert answer == f"re: {question}"  # each question directly followed by its answer
            # The request that produced it showed exactly the turns before it.
            seen = tuple(content for _, content in history[:index])
            assert seen in requests, f"no request saw {seen}"
