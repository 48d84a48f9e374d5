"""`botkit serve shop --channel slack` as a real process against a local Slack Web API server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.testing import write_bot
from tests.adapters.slack_api import (
    CHANNEL,
    SECRET,
    TOKEN,
    FakeSlackAPI,
    deliver,
    event_body,
    free_port,
    mention,
)

OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture
async def api() -> Any:
    async with FakeSlackAPI() as server:
        yield server


def environment(home: Path, **variables: str) -> dict[str, str]:
    return {**os.environ, "BOTKIT_HOME": str(home), **variables}


async def until_listening(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(1000):
            if process.returncode is not None:
                raise AssertionError("botkit serve exited")
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.02)
    raise AssertionError("botkit serve did not start listening")


async def test_serve_answers_a_mention_on_slack_and_stops_on_sigterm(
    api: FakeSlackAPI, home: Path
) -> None:
    port = free_port()
    env = environment(
        home,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        BOTKIT_SLACK_API_URL=api.base_url,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "serve", "shop", "--channel", "slack", "--port", str(port),
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/slack/events"
        await until_listening(url, process)
        event = mention("When are you open?")
        response = await deliver(url, event_body(event))
        assert response.status_code == 200
        await api.until(lambda: [m.text for m in api.thread(CHANNEL, event["ts"])] == [OPEN], 30)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert TOKEN not in stderr.decode() and SECRET not in stderr.decode()
    # At the default level, the one line saying where Slack reaches the bot (and no
    # warning from bolt, which reads SLACK_BOT_TOKEN itself, that botkit's client wins).
    assert stderr.decode() == f"slack: shop by the Events API at {url}\n"


@pytest.mark.parametrize(
    ("variables", "bots", "expected"),
    [
        ({}, ["shop"], "SLACK_BOT_TOKEN: the Slack channel needs SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": TOKEN}, ["shop"], "the Slack channel needs SLACK_SIGNING_SECRET"),
        (
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET},
            ["shop", "nimbus"],
            "BOTKIT_SLACK_BOT: one Slack app answers as one bot",
        ),
    ],
)
async def test_serve_with_missing_settings_says_what_to_set(
    home: Path, variables: dict[str, str], bots: list[str], expected: str
) -> None:
    write_bot(home, "nimbus", faq={})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "serve", *bots, "--channel", "slack",
        "--port", str(free_port()), env=environment(home, **variables),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert expected in stderr.decode()


async def test_serve_with_a_token_slack_rejects_exits_with_the_reason(
    api: FakeSlackAPI, home: Path
) -> None:
    env = environment(
        home,
        SLACK_BOT_TOKEN="xoxb-revoked",
        SLACK_SIGNING_SECRET=SECRET,
        BOTKIT_SLACK_API_URL=api.base_url,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "serve", "shop", "--channel", "slack",
        "--port", str(free_port()), env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "SLACK_BOT_TOKEN: Slack rejected the token (invalid_auth)" in stderr.decode()
    assert "xoxb-revoked" not in stderr.decode()
