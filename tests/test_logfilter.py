"""No secret reaches a log line: the redactor itself, and `botkit -vv serve` with every
channel running against the fake platform APIs with known secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from botkit.logfilter import REDACTED, SecretRedactor, secrets_of
from botkit.settings import Settings
from botkit.testing import write_bot
from tests.adapters import slack_api, telegram_api
from tests.adapters.slack_api import FakeSlackAPI, event_body, mention
from tests.adapters.telegram_api import PRIVATE_CHAT, FakeBotAPI, text_update
from tests.conftest import SHOP_FAQ
from tests.llm.openai_server import Fail, OpenAIServer
from tests.loopback import free_port

# Every secret a process can hold, each a distinct string that shows up if it leaks.
SECRETS = {
    "TELEGRAM": telegram_api.TOKEN,
    "WEBHOOK": "webhook-secret-for-the-log-test",
    "SLACK_BOT": slack_api.TOKEN,
    "SLACK_SIGNING": slack_api.SECRET,
    "SLACK_APP": slack_api.APP_TOKEN,
    "LLM": "sk-llm-key-for-the-log-test",
    "FALLBACK": "sk-fallback-key-for-the-log-test",
    "WEB_1": "web-key-one-for-the-log-test",
    "WEB_2": "web-key-two-for-the-log-test",
}


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("x", logging.INFO, __file__, 1, message, args, exc_info)


def formatted(redactor: SecretRedactor, entry: logging.LogRecord) -> str:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(redactor)
    assert redactor.filter(entry)
    return handler.format(entry)


def test_secrets_are_redacted_in_messages_arguments_and_tracebacks() -> None:
    token = "123456:ABC-secret"
    redactor = SecretRedactor([token, SecretStr("k1-secret, k2-secret"), None, ""])
    assert formatted(redactor, record("GET /bot%s/getMe", token)) == f"GET /bot{REDACTED}/getMe"
    # A URL carries the token percent-encoded; a list of keys is redacted key by key.
    assert formatted(redactor, record("url=/bot123456%3AABC-secret/x")) == f"url=/bot{REDACTED}/x"
    assert formatted(redactor, record("key %s", "k2-secret")) == f"key {REDACTED}"
    try:
        raise RuntimeError(f"failed calling /bot{token}/getMe")
    except RuntimeError as err:
        text = formatted(redactor, record("it broke", exc=err))
    assert "it broke" in text and f"/bot{REDACTED}/getMe" in text and token not in text
    assert formatted(redactor, record("nothing %d here", 1)) == "nothing 1 here"


def test_every_secret_of_the_settings_is_found() -> None:
    settings = Settings(
        llm={"api_key": "sk-1"},
        telegram={"bot_token": "t-1", "bot_tokens": {"a": "t-2"}, "webhook_secret": "w-1"},
        slack={"bot_token": "x-1", "signing_secret": "s-1", "app_token": "xa-1"},
        web={"api_keys": "k-1,k-2"},
    )
    found = set(secrets_of(settings))
    assert found == {"sk-1", "t-1", "t-2", "w-1", "x-1", "s-1", "xa-1", "k-1,k-2"}


async def until_listening(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(1500):
            if process.returncode is not None:
                assert process.stderr is not None
                raise AssertionError(f"botkit serve exited: {await process.stderr.read()!r}")
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.02)
    raise AssertionError("botkit serve did not start listening")


@asynccontextmanager
async def botkit_serve(
    home: Path, *args: str, **env: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """`botkit -vv serve shop ARGS` until the block ends; then its stderr is in the list."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "-vv", "serve", "shop", *args,
        env={**os.environ, "BOTKIT_HOME": str(home), **env}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    log: list[str] = []
    try:
        yield process, log
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        log.append(stderr.decode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, log


@pytest.fixture
async def llm() -> AsyncIterator[OpenAIServer]:
    server = OpenAIServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def environment(tmp_path: Path, llm: OpenAIServer) -> dict[str, str]:
    # The first answer fails, so the fallback (with its own key) is used as well.
    llm.then(Fail(500))
    write_bot(
        tmp_path,
        "shop",
        faq=SHOP_FAQ,
        settings=f'streaming = false\n[[fallbacks]]\nbase_url = "{llm.base_url}"\n'
        'model = "backup"\napi_key_env = "BACKUP_KEY"\n',
    )
    return {
        "BOTKIT_STORE_URL": "memory://",
        "BOTKIT_TELEGRAM_BOT_TOKENS": json.dumps({"shop": SECRETS["TELEGRAM"]}),
        "BOTKIT_TELEGRAM_WEBHOOK_SECRET": SECRETS["WEBHOOK"],
        "SLACK_BOT_TOKEN": SECRETS["SLACK_BOT"],
        "SLACK_SIGNING_SECRET": SECRETS["SLACK_SIGNING"],
        "BOTKIT_LLM_BASE_URL": llm.base_url,
        "BOTKIT_LLM_API_KEY": SECRETS["LLM"],
        "BOTKIT_LLM_MAX_RETRIES": "0",
        "BACKUP_KEY": SECRETS["FALLBACK"],
        "BOTKIT_WEB_API_KEYS": f"{SECRETS['WEB_1']},{SECRETS['WEB_2']}",
    }


def assert_no_secret_in(log: str) -> None:
    leaked = [name for name, secret in SECRETS.items() if secret in log]
    assert leaked == [], f"secrets in the log: {leaked}"


async def test_no_secret_is_logged_with_webhooks_and_the_web_at_debug(
    tmp_path: Path, llm: OpenAIServer, environment: dict[str, str]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with FakeBotAPI() as telegram, FakeSlackAPI() as slack:
        env = environment | {
            "BOTKIT_TELEGRAM_BASE_URL": telegram.base_url,
            "BOTKIT_SLACK_API_URL": slack.base_url,
        }
        async with botkit_serve(
            tmp_path, "--channel", "web", "--channel", "telegram", "--channel", "slack",
            "--port", str(port), "--webhook", f"{base}/telegram", **env,
        ) as (process, log):  # fmt: skip
            await until_listening(f"{base}/healthz", process)
            await telegram.until(lambda: telegram.webhook, 30)
            assert (await telegram.deliver(text_update("When are you open?"))).status_code == 200
            event = mention("Can I get a refund?")
            answered = await slack_api.deliver(f"{base}/slack/events", event_body(event))
            assert answered.status_code == 200
            auth = {"Authorization": f"Bearer {SECRETS['WEB_2']}"}
            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as web:
                session = (await web.post("/v1/sessions", json={})).json()["session_id"]
                sent = await web.post(f"/v1/sessions/{session}/messages", json={"message": "hi"})
                assert sent.status_code == 200
            await telegram.until(lambda: telegram.chat(PRIVATE_CHAT), 30)
            await slack.until(lambda: slack.thread(slack_api.CHANNEL, event["ts"]), 30)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"NOT HTTP\r\n\r\n")  # uvicorn logs a warning about it
            await reader.read()
            writer.close()
    assert_no_secret_in(log[0])
    # uvicorn's records, too, pass the root's handler (and its redactor).
    assert "WARNING uvicorn.error: Invalid HTTP request received." in log[0]
    # The lines that used to carry them were logged, redacted.
    assert "setWebhook" in log[0] and f"/bot{REDACTED}/" in log[0]
    keys = [request.headers["authorization"] for request in llm.received]
    assert f"Bearer {SECRETS['FALLBACK']}" in keys  # the fallback was used, with its key
    # And `serve` said where each channel is.
    assert f"web: {base}/ (sessions API /v1/, chat page /)" in log[0]
    assert f"telegram: by webhook, shop at {base}/telegram/shop (served on {base})" in log[0]
    assert f"slack: shop by the Events API at {base}/slack/events" in log[0]


async def test_no_secret_is_logged_with_polling_and_socket_mode_at_debug(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    async with FakeBotAPI() as telegram, FakeSlackAPI() as slack:
        env = environment | {
            "BOTKIT_TELEGRAM_BASE_URL": telegram.base_url,
            "BOTKIT_SLACK_API_URL": slack.base_url,
            "SLACK_APP_TOKEN": SECRETS["SLACK_APP"],
        }
        async with botkit_serve(tmp_path, "--channel", "telegram", "--channel", "slack", **env) as (
            process,
            log,
        ):
            await telegram.until(lambda: process.returncode or telegram.called("getUpdates"), 30)
            telegram.push(text_update("When are you open?"))
            event = mention("Can I get a refund?")
            await slack.push(event_body(event))
            await telegram.until(lambda: telegram.chat(PRIVATE_CHAT), 30)
            await slack.until(lambda: slack.thread(slack_api.CHANNEL, event["ts"]), 30)
    assert_no_secret_in(log[0])
    assert "apps.connections.open" in log[0] and f"/bot{REDACTED}/getUpdates" in log[0]
    assert "telegram: shop by long polling" in log[0]
    assert "slack: shop by Socket Mode" in log[0]
