"""Two real `botkit serve --channel web` processes sharing one store (an SQLite file, and
Redis under a key prefix of the test's own): a person's message posted to one reaches a
customer connected to the other, once; idempotency holds across them; a message whose
worker was killed is answered by the other; a store that goes away is a JSON 503."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from botkit.testing import write_bot
from tests.conftest import SHOP_FAQ
from tests.desks.webhook_receiver import SECRET, DeskReceiver
from tests.llm.openai_server import Answer, OpenAIServer
from tests.loopback import free_port
from tests.stores.conftest import REDIS_URL, redis_prefix

KEY = "worker-key"
HOURS = "We are open Monday to Friday, 9:00 to 17:00."


@dataclass
class Worker:
    """One `botkit serve` process; what it logs goes to `log`."""

    process: asyncio.subprocess.Process
    url: str
    log: Path

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {KEY}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=20)

    async def until_ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(600):
                if self.process.returncode is not None:
                    raise AssertionError(f"the worker exited: {self.log.read_text()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the worker did not start: {self.log.read_text()}")

    async def kill(self) -> None:
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM, as an operator would; a clean stop exits 0."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            await self.kill()


@asynccontextmanager
async def workers(
    home: Path, store: dict[str, str], *, count: int = 2, **env: str
) -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    environment = os.environ | {
        "BOTKIT_HOME": str(home),
        "BOTKIT_WEB_API_KEYS": KEY,
        "BOTKIT_HANDOFF_WEBHOOK_SECRET": SECRET,
        **store,
        **env,
    }
    command = [sys.executable, "-m", "botkit", "serve", "shop", "--channel", "web"]
    try:
        for number in range(count):
            port = free_port()
            log = home / f"worker-{number}.log"
            with log.open("w") as output:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    "--port",
                    str(port),
                    env=environment,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=output,
                )
            started.append(Worker(process, f"http://127.0.0.1:{port}", log))
        await asyncio.gather(*(worker.until_ready() for worker in started))
        yield started
    finally:
        for worker in started:
            await worker.stop()


async def until(condition: Callable[[], object]) -> None:
    """Wait until `condition()` holds (something another process does)."""
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - another process acts: nothing to await
            await asyncio.sleep(0.02)


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The environment of workers sharing one store."""
    if request.param == "sqlite":
        yield {"BOTKIT_STORE_URL": f"sqlite:///{tmp_path}/shared.db"}
        return
    async for prefix in redis_prefix():
        yield {"BOTKIT_STORE_URL": REDIS_URL, "BOTKIT_STORE_PREFIX": prefix}


def home_with_desk(home: Path, url: str) -> Path:
    settings = f'[handoff]\ndesk = "webhook"\nwebhook_url = "{url}"\n'
    write_bot(home, "shop", faq=SHOP_FAQ, settings=settings)
    return home


async def next_event(events: AsyncIterator[ServerSentEvent]) -> tuple[str, dict[str, Any]]:
    event = await asyncio.wait_for(anext(events), 10)
    data: dict[str, Any] = event.json()
    return event.event, data


async def test_a_persons_message_reaches_the_customer_on_the_other_worker_once(
    tmp_path: Path, store: dict[str, str]
) -> None:
    async with DeskReceiver() as receiver:
        home = home_with_desk(tmp_path, receiver.url)
        async with workers(home, store) as (a, b), a.client() as desk, b.client() as customer:
            session_id = (await customer.post("/v1/sessions", json={})).json()["session_id"]
            url = f"/v1/sessions/{session_id}/events"
            async with aconnect_sse(customer, "GET", url) as source:
                events = source.aiter_sse()
                created = await desk.post(f"/v1/sessions/{session_id}/handoff", json={})
                assert created.status_code == 201, created.text
                handoff_id = created.json()["handoff_id"]
                assert (await receiver.next("handoff.requested"))["handoff"]["session_id"] == (
                    session_id
                )
                assert (await next_event(events))[1]["kind"] == "handoff"
                await desk.post(f"/v1/handoffs/{handoff_id}/take", json={"agent": "Anna"})
                assert (await next_event(events))[1]["kind"] == "joined"

                said = await desk.post(
                    f"/v1/handoffs/{handoff_id}/messages",
                    json={"agent": "Anna", "text": "Hello from the other worker."},
                )
                posted = time.monotonic()
                assert said.status_code == 202
                kind, agent = await next_event(events)
                arrived = time.monotonic() - posted
                assert (kind, agent["name"], agent["content"]) == (
                    "agent",
                    "Anna",
                    "Hello from the other worker.",
                )
                assert arrived < 2.0, f"took {arrived:.2f} s"

                relayed = await customer.post(
                    f"/v1/sessions/{session_id}/messages", json={"message": "Thanks, Anna!"}
                )
                assert relayed.json()["kind"] == "relayed"
                assert (await next_event(events))[0] == "user"
                await desk.post(f"/v1/handoffs/{handoff_id}/resolve", json={})
                kind, notice = await next_event(events)
                # Nothing came twice between the agent's message and the resolve.
                assert (kind, notice["kind"]) == ("notice", "resolved")
            await receiver.next("handoff.message")
            await receiver.next("handoff.resolved")
            answer = await customer.post(
                f"/v1/sessions/{session_id}/messages", json={"message": "When are you open?"}
            )
            assert answer.json()["reply"] == HOURS
            history = (await desk.get(f"/v1/sessions/{session_id}")).json()["messages"]
    assert [m["role"] for m in history].count("agent") == 1
    assert [e["message"]["text"] for e in receiver.of("handoff.message")] == ["Thanks, Anna!"]
    assert receiver.refused == 0


async def test_a_desk_event_whose_worker_died_is_sent_by_the_other(
    tmp_path: Path, store: dict[str, str]
) -> None:
    async with DeskReceiver() as receiver:
        receiver.answers.append(503)  # the first attempt: its worker waits a second to retry
        home = home_with_desk(tmp_path, receiver.url)
        async with (
            workers(home, store, BOTKIT_STORE_LEASE="1") as (a, b),
            a.client() as customer,
        ):
            session_id = (await customer.post("/v1/sessions", json={})).json()["session_id"]
            handed = await customer.post(
                f"/v1/sessions/{session_id}/messages", json={"message": "/human"}
            )
            assert handed.json()["kind"] == "handoff", handed.text
            await until(lambda: receiver.turned_away)
            await a.kill()  # before its retry
            requested = await receiver.next("handoff.requested", within=15)
            await asyncio.sleep(1.5)  # nothing more comes
    [turned_away] = receiver.turned_away
    assert requested["id"] == turned_away["id"]  # the same event, sent by b
    assert requested["handoff"]["session_id"] == session_id
    assert [e["type"] for e in receiver.events] == ["handoff.requested"]


async def test_an_idempotency_key_holds_across_workers(
    tmp_path: Path, store: dict[str, str]
) -> None:
    llm = OpenAIServer().then(Answer("Parcels arrive in 2 to 4 working days.", delay=1.0))
    await llm.start()
    try:
        write_bot(tmp_path, "shop", faq=SHOP_FAQ)
        env = {"BOTKIT_LLM_BASE_URL": llm.base_url, "BOTKIT_LLM_API_KEY": "sk-test"}
        async with workers(tmp_path, store, **env) as (a, b), a.client() as one, b.client() as two:
            session_id = (await one.post("/v1/sessions", json={})).json()["session_id"]
            url = f"/v1/sessions/{session_id}/messages"
            body = {"message": "How long does shipping take?"}
            headers = {"Idempotency-Key": "order-1234-question"}
            first = asyncio.create_task(one.post(url, json=body, headers=headers))
            await until(lambda: llm.received)  # the first worker is asking the model
            second = await two.post(url, json=body, headers=headers)
            later = await one.post(url, json=body, headers=headers)
            replies = [await first, second, later]
            history = (await two.get(f"/v1/sessions/{session_id}")).json()["messages"]
    finally:
        await llm.stop()
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert replies[1].json() == replies[2].json() == replies[0].json()
    assert replies[0].json()["reply"] == "Parcels arrive in 2 to 4 working days."
    assert [r.headers.get("idempotent-replayed") for r in replies] == [None, "true", "true"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert len(llm.received) == 1


async def test_a_message_whose_worker_died_is_answered_by_the_other(
    tmp_path: Path, store: dict[str, str]
) -> None:
    # The first worker's request to the model never ends; the second's is answered.
    llm = OpenAIServer().then(Answer("too late", delay=60), Answer("Refunds within 30 days."))
    await llm.start()
    try:
        write_bot(tmp_path, "shop", faq=SHOP_FAQ)
        env = {
            "BOTKIT_LLM_BASE_URL": llm.base_url,
            "BOTKIT_LLM_API_KEY": "sk-test",
            "BOTKIT_STORE_LEASE": "1",
        }
        async with workers(tmp_path, store, **env) as (a, b), b.client() as customer:
            session_id = (await customer.post("/v1/sessions", json={})).json()["session_id"]
            async with aconnect_sse(customer, "GET", f"/v1/sessions/{session_id}/events") as live:
                events = live.aiter_sse()
                async with a.client() as doomed:
                    asked = asyncio.create_task(
                        doomed.post(
                            f"/v1/sessions/{session_id}/messages",
                            json={"message": "Can I get a refund?"},
                        )
                    )
                    kind, question = await next_event(events)
                    assert kind == "user"
                    await until(lambda: llm.received)
                    await a.kill()  # mid-answer
                    with pytest.raises(httpx.TransportError):
                        await asked
                kind, answer = await next_event(events)
            history = (await customer.get(f"/v1/sessions/{session_id}")).json()["messages"]
    finally:
        await llm.stop()
    assert (kind, answer["content"]) == ("answer", "Refunds within 30 days.")
    assert answer["in_reply_to"] is not None and question["content"] == "Can I get a refund?"
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "Can I get a refund?"),
        ("assistant", "Refunds within 30 days."),
    ]
    assert len(llm.received) == 2


@asynccontextmanager
async def private_redis() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A Redis server of the test's own, so the test may take it away."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs redis-server")
        pytest.skip("needs redis-server (`apt-get install redis-server`)")
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                break
        yield f"redis://127.0.0.1:{port}/0", server
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_a_store_that_stops_answering_is_a_json_503_and_then_comes_back(
    tmp_path: Path,
) -> None:
    # A Redis that keeps its connections but answers nothing (stopped, or a network that
    # drops packets): redis-py waits forever unless told otherwise.
    write_bot(tmp_path, "shop", faq=SHOP_FAQ)
    settings = {"BOTKIT_STORE_POOL_TIMEOUT": "1"}
    async with private_redis() as (url, redis_server):
        settings["BOTKIT_STORE_URL"] = url
        async with (
            workers(tmp_path, settings, count=1) as [worker],
            worker.client() as client,
        ):
            session_id = (await client.post("/v1/sessions", json={})).json()["session_id"]
            redis_server.send_signal(signal.SIGSTOP)
            try:
                started = time.monotonic()
                async with asyncio.timeout(10):
                    stuck = await client.get(f"/v1/sessions/{session_id}")
                waited = time.monotonic() - started
            finally:
                redis_server.send_signal(signal.SIGCONT)
            again = await client.get(f"/v1/sessions/{session_id}")
    assert stuck.status_code == 503 and stuck.json()["error"]["code"] == "unavailable"
    assert waited < 5
    assert again.status_code == 200, again.text


async def test_a_store_that_goes_away_is_a_json_503(tmp_path: Path) -> None:
    write_bot(tmp_path, "shop", faq=SHOP_FAQ)
    async with (
        private_redis() as (url, redis_server),
        workers(tmp_path, {"BOTKIT_STORE_URL": url}, count=1) as [worker],
        worker.client() as client,
    ):
        session_id = (await client.post("/v1/sessions", json={})).json()["session_id"]
        redis_server.kill()
        await redis_server.wait()
        response = await client.post(f"/v1/sessions/{session_id}/messages", json={"message": "hi"})
        others = [
            await client.get(f"/v1/sessions/{session_id}"),
            await client.post(
                "/v1/sessions", json={"messages": [{"role": "user", "content": "a"}]}
            ),
        ]
        # An answer from the FAQ needs no store (nothing is kept): it is still given.
        offline = await client.post("/v1/answers", json={"question": "When are you open?"})
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
    for other in others:
        assert other.status_code == 503 and other.headers["retry-after"] == "5", other.text
        assert other.json()["error"]["code"] == "unavailable"
    assert offline.status_code == 200
    assert ready.status_code == 503
