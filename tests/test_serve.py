"""`botkit serve`: channels side by side on one HTTP server, stopped gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Sequence

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route

from botkit.adapters import CHANNELS, ServeOptions
from botkit.app import BotApp
from botkit.errors import ConfigError, StoreError
from botkit.home import BotDefinition
from botkit.serve import describe, load_channel, serve
from botkit.settings import Settings
from tests.loopback import free_port


class FakeChannel:
    """Serves GET /ping/NAME, runs a background loop, records its lifecycle."""

    events: list[str] = []

    def __init__(self, app: BotApp, options: ServeOptions, name: str) -> None:
        self.name = name
        self.app = app

    def routes(self) -> Sequence[BaseRoute]:
        async def ping(request: Request) -> PlainTextResponse:
            return PlainTextResponse(f"pong from {self.name}: {sorted(self.app.pipelines)}")

        return [Route(f"/ping/{self.name}", ping)]

    async def run(self) -> None:
        self.events.append(f"{self.name} running")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.events.append(f"{self.name} cancelled")
            raise

    async def aclose(self) -> None:
        self.events.append(f"{self.name} closed")


def fake_a(app: BotApp, options: ServeOptions) -> FakeChannel:
    return FakeChannel(app, options, "a")


def fake_b(app: BotApp, options: ServeOptions) -> FakeChannel:
    return FakeChannel(app, options, "b")


async def http_get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    response = (await reader.read()).decode()
    writer.close()
    return response


@pytest.fixture
def fake_channels(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setitem(CHANNELS, "fake_a", f"{__name__}:fake_a")
    monkeypatch.setitem(CHANNELS, "fake_b", f"{__name__}:fake_b")
    FakeChannel.events = []
    return FakeChannel.events


async def test_channels_share_one_server_and_stop_on_sigterm(
    shop: BotDefinition, fake_channels: list[str]
) -> None:
    port = free_port()
    options = ServeOptions(channels=("fake_a", "fake_b"), port=port)
    async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[shop]) as app:
        task = asyncio.create_task(serve(app, options))
        for _ in range(100):
            await asyncio.sleep(0.02)
            try:
                first = await http_get(port, "/ping/a")
                break
            except OSError:
                continue
        assert "pong from a: ['shop']" in first
        assert "pong from b" in await http_get(port, "/ping/b")
        missing = await http_get(port, "/nowhere")
        assert missing.startswith("HTTP/1.1 404")
        assert '{"error":{"code":"not_found","message":"Not Found"}}' in missing
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)
    assert fake_channels[:2] == ["a running", "b running"]
    assert fake_channels[2:4] == ["a cancelled", "b cancelled"]
    assert fake_channels[4:] == ["b closed", "a closed"]  # closed in reverse


async def test_a_taken_port_is_a_clear_error(shop: BotDefinition, fake_channels: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        options = ServeOptions(channels=("fake_a",), port=taken.getsockname()[1])
        async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[shop]) as app:
            with pytest.raises(ConfigError, match="cannot listen on 127.0.0.1"):
                await serve(app, options)


def test_an_unknown_channel_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown channel 'fax'"):
        load_channel("fax")


async def test_cancelling_serve_stops_the_server_and_channels(
    shop: BotDefinition, fake_channels: list[str]
) -> None:
    port = free_port()
    options = ServeOptions(channels=("fake_a",), port=port)
    async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[shop]) as app:
        task = asyncio.create_task(serve(app, options))
        for _ in range(100):
            await asyncio.sleep(0.02)
            with contextlib.suppress(OSError):
                await http_get(port, "/ping/a")
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert fake_channels == ["a running", "a cancelled", "a closed"]
    with pytest.raises(OSError):
        await http_get(port, "/ping/a")  # nothing listens any more


@pytest.mark.parametrize(
    ("channel", "options", "values", "expected"),
    [
        ("web", {}, {}, "web: http://127.0.0.1:8080/ (sessions API /v1/, chat page /)"),
        (
            "web",
            {"host": "::1"},
            {"web": {"public_messages_per_minute": 0}},
            "web: http://[::1]:8080/ (sessions API /v1/, chat page off)",
        ),
        ("telegram", {}, {}, "telegram: shop by long polling"),
        (
            "telegram",
            {"webhook_url": "https://bots.example.com/hooks/"},
            {},
            "telegram: by webhook, shop at https://bots.example.com/hooks/shop"
            " (served on http://127.0.0.1:8080)",
        ),
        ("slack", {}, {}, "slack: shop by the Events API at http://127.0.0.1:8080/slack/events"),
        ("slack", {}, {"slack": {"app_token": "xapp-1"}}, "slack: shop by Socket Mode"),
    ],
)
async def test_each_channel_is_described_in_one_line(
    shop: BotDefinition,
    channel: str,
    options: dict[str, str],
    values: dict[str, object],
    expected: str,
) -> None:
    settings = Settings(store={"url": "memory://"}, **values)  # type: ignore[arg-type]
    async with BotApp(settings=settings, bots=[shop]) as app:
        assert describe(channel, app, ServeOptions(**options), 8080) == expected  # type: ignore[arg-type]


class StartingChannel(FakeChannel):
    """A channel that says it is still connecting until told otherwise."""

    ready = False


def starting(app: BotApp, options: ServeOptions) -> StartingChannel:
    return StartingChannel(app, options, "slow")


async def test_health_readiness_and_metrics_are_served_whatever_the_channels(
    shop: BotDefinition, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CHANNELS, "starting", f"{__name__}:starting")
    port = free_port()
    options = ServeOptions(channels=("starting",), port=port)  # a channel with no routes of its own
    async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[shop]) as app:
        task = asyncio.create_task(serve(app, options))
        for _ in range(100):
            await asyncio.sleep(0.02)
            with contextlib.suppress(OSError):
                health = await http_get(port, "/healthz")
                break
        assert health.startswith("HTTP/1.1 200") and '{"status":"ok"}' in health
        starting_up = await http_get(port, "/readyz")
        assert starting_up.startswith("HTTP/1.1 503") and "StartingChannel: starting" in starting_up
        StartingChannel.ready = True
        assert (await http_get(port, "/readyz")).startswith("HTTP/1.1 200")

        async def broken(key: str) -> int:
            raise StoreError("Redis store at 127.0.0.1:6379: Connection refused")

        monkeypatch.setattr(app.store, "cursor", broken)
        store_down = await http_get(port, "/readyz")
        assert store_down.startswith("HTTP/1.1 503") and "Connection refused" in store_down
        assert "retry-after: 5" in store_down.lower()
        metrics = await http_get(port, "/metrics")
        assert metrics.startswith("HTTP/1.1 200") and "botkit_messages_total" in metrics
        assert "botkit_handoffs_total" in metrics
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)
