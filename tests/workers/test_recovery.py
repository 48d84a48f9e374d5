"""A worker killed mid-answer loses nothing: what it had accepted is answered once, by another
worker, after its lease runs out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from botkit.stores import open_store
from tests.adapters.telegram_api import PRIVATE_CHAT, TOKEN, FakeBotAPI, text_update
from tests.workers.cluster import EchoLLM, start_worker


async def test_an_update_whose_worker_died_is_answered_once_after_a_restart(
    cluster_home: Path,
) -> None:
    store_url = f"sqlite:///{cluster_home / 'shared.db'}"
    async with FakeBotAPI() as api, EchoLLM(stall=1).running() as llm:
        env = {
            "BOTKIT_STORE_URL": store_url,
            "BOTKIT_STORE_LEASE": "1.5",
            "BOTKIT_LLM_BASE_URL": llm.base_url,
            "BOTKIT_LLM_API_KEY": "sk-x",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "BOTKIT_TELEGRAM_BASE_URL": api.base_url,
        }
        first = start_worker(cluster_home, ["shop"], env, name="first", channels=["telegram"])
        await first.until_ready()
        api.push(text_update("Where is my parcel?"))
        await api.until(lambda: len(llm.requests) == 1, within=30)  # mid-answer
        # Telegram was told the update arrived (its offset confirmed) only once it was kept.
        await api.until(lambda: not api._pending, within=30)
        first.kill()
        second = start_worker(cluster_home, ["shop"], env, name="second", channels=["telegram"])
        try:
            await second.until_ready()
            answered = lambda: [m.text for m in api.chat(PRIVATE_CHAT)]  # noqa: E731
            await api.until(lambda: answered() == ["re: Where is my parcel?"], within=30)
            await asyncio.sleep(1.0)  # nothing more comes
            assert answered() == ["re: Where is my parcel?"]
        finally:
            await second.stop()
    async with await open_store(store_url, home=cluster_home) as store:
        turns = await store.recent(f"shop/telegram/{PRIVATE_CHAT}", 10)
    assert [(t.role, t.content) for t in turns] == [
        ("user", "Where is my parcel?"),
        ("assistant", "re: Where is my parcel?"),
    ]
