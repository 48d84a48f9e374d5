"""`botkit serve shop --channel telegram` as a real process against a local Bot API server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.telegram_api import PRIVATE_CHAT, TOKEN, FakeBotAPI, text_update


@pytest.fixture
async def api() -> Any:
    async with FakeBotAPI() as server:
        yield server


def environment(home: Path, **variables: str) -> dict[str, str]:
    return {**os.environ, "BOTKIT_HOME": str(home), **variables}


async def test_serve_answers_on_telegram_and_stops_on_sigterm(api: FakeBotAPI, home: Path) -> None:
    env = environment(home, TELEGRAM_BOT_TOKEN=TOKEN, BOTKIT_TELEGRAM_BASE_URL=api.base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "serve", "shop", "--channel", "telegram", "-v",
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await api.until(lambda: process.returncode is not None or api.called("getUpdates"), 30)
        api.push(text_update("When are you open?"))
        await api.until(lambda: api.chat(PRIVATE_CHAT), 30)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert api.chat(PRIVATE_CHAT)[0].text == "We are open Monday to Friday, 9:00 to 17:00."
    log = stderr.decode()
    assert "/bot<redacted>/sendMessage" in log and TOKEN not in log  # -v logs requests, redacted
    # It let go of the updates it had fetched, so a restart does not answer them again.
    last = api.called("getUpdates")[-1]
    assert last.params.get("timeout") == 0 and int(last.params["offset"]) > 0


async def test_serve_without_a_token_says_which_variable_to_set(home: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "serve", "shop", "--channel", "telegram",
        env=environment(home), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "TELEGRAM_BOT_TOKEN: bot 'shop' has no token: set TELEGRAM_BOT_TOKEN" in stderr.decode()
