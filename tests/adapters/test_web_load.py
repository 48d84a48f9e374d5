"""The web channel under load and with a store that is busy: waits, or a JSON 503, never a
plain-text 500, and nothing half-stored."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from botkit.home import BotDefinition
from tests.adapters.web_testing import KEY, ScriptedResponder, web_server
from tests.stores.conftest import REDIS_URL, redis_prefix


async def test_400_concurrent_reads_on_a_small_redis_pool_all_succeed(shop: BotDefinition) -> None:
    """The audit's case: redis-py's default pool failed at once ("Too many connections")
    when every connection was busy; the bounded pool makes a call wait for one."""
    async for prefix in redis_prefix():
        store = {"url": REDIS_URL, "prefix": prefix, "pool_size": 8, "pool_timeout": 30}
        async with web_server([shop], settings={"store": store}) as server:
            limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
            # No time limit that could fail it: waiting is what the pool does now.
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(
                base_url=server.url, headers=headers, limits=limits, timeout=120
            ) as client:
                created = await client.post("/v1/sessions", json={})
                url = f"/v1/sessions/{created.json()['session_id']}"
                responses = await asyncio.gather(*(client.get(url) for _ in range(400)))
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 400}


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


@asynccontextmanager
async def locked(path: Path) -> AsyncIterator[None]:
    """Another process holds the SQLite file's write lock meanwhile."""
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert locker.stdout is not None
    try:
        assert await asyncio.wait_for(locker.stdout.readline(), 10) == b"locked\n"
        yield
    finally:
        await asyncio.wait_for(locker.communicate(b"\n"), 10)


async def test_an_sqlite_file_locked_by_another_process_is_a_json_503(
    shop: BotDefinition, tmp_path: Path
) -> None:
    path = tmp_path / "botkit.db"
    store = {"url": f"sqlite:///{path}", "pool_timeout": 0.5}
    async with web_server([shop], settings={"store": store}) as server, server.client() as client:
        session_id = (await client.post("/v1/sessions", json={})).json()["session_id"]
        url = f"/v1/sessions/{session_id}/messages"
        async with locked(path):
            refused = await client.post(url, json={"message": "When are you open?"})
        answered = await client.post(url, json={"message": "When are you open?"})
        history = (await client.get(f"/v1/sessions/{session_id}")).json()["messages"]
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["error"]["code"] == "unavailable"
    assert answered.status_code == 200
    # The refused message was not kept (the client was told to send it again): once each.
    assert [m["role"] for m in history] == ["user", "assistant"]


async def test_a_message_accepted_before_the_file_was_locked_is_a_503_kept_and_answered(
    shop: BotDefinition, tmp_path: Path
) -> None:
    path = tmp_path / "botkit.db"
    store = {"url": f"sqlite:///{path}", "pool_timeout": 0.5, "lease": 1.0}
    async with web_server([shop], settings={"store": store}) as server, server.client() as client:
        gate = asyncio.Event()
        responder = ScriptedResponder(["Nine ", "to five."], gate=gate)
        server.app.pipelines["shop"].responder = responder
        session_id = (await client.post("/v1/sessions", json={})).json()["session_id"]
        url = f"/v1/sessions/{session_id}/messages"
        posted = asyncio.create_task(client.post(url, json={"message": "When are you open?"}))
        await asyncio.wait_for(responder.started.wait(), 5)
        async with locked(path):
            gate.set()  # the answer is ready, but the file cannot take it
            response = await posted
        # Kept: once the lock is gone, the inbox answers it (after its lease, a second).
        for _ in range(200):
            history = (await client.get(f"/v1/sessions/{session_id}")).json()["messages"]
            if len(history) == 2:
                break
            await asyncio.sleep(0.1)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
    assert "kept" in response.json()["error"]["message"]
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "When are you open?"),
        ("assistant", "Nine to five."),
    ]
