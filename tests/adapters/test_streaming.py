from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from botkit.adapters.streaming import stream_reply


class Screen:
    def __init__(self, slow: float = 0.0) -> None:
        self.shown: list[tuple[str, bool]] = []
        self.slow = slow

    async def show(self, markdown: str, *, final: bool = True) -> None:
        await asyncio.sleep(self.slow)
        self.shown.append((markdown, final))


async def deltas(parts: list[str], gap: float) -> AsyncIterator[str]:
    for part in parts:
        await asyncio.sleep(gap)
        yield part


async def test_updates_are_throttled_and_the_whole_text_comes_last() -> None:
    screen = Screen()
    parts = [f"word{i} " for i in range(40)]
    text = await stream_reply(screen, deltas(parts, 0.005), interval=0.05)
    assert text == "".join(parts)
    assert screen.shown[-1] == (text, True)
    partial = [shown for shown, final in screen.shown if not final]
    assert 1 <= len(partial) < len(parts) // 2
    assert all(text.startswith(p) for p in partial)


async def test_a_slow_screen_never_holds_up_the_answer() -> None:
    screen = Screen(slow=0.1)
    text = await stream_reply(screen, deltas(["a", "b", "c", "d"], 0.01), interval=0.0)
    assert text == "abcd" and screen.shown[-1] == ("abcd", True)
    assert len(screen.shown) < 5


async def test_blank_text_is_never_shown_as_a_partial() -> None:
    screen = Screen()
    await stream_reply(screen, deltas(["  ", "\n", "Hi"], 0.01), interval=0.0)
    assert all(shown.strip() for shown, final in screen.shown if not final)


async def test_a_failing_stream_raises_after_the_reader_stops() -> None:
    async def broken() -> AsyncIterator[str]:
        yield "part"
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        await stream_reply(Screen(), broken(), interval=0.0)


async def test_without_streaming_the_whole_text_is_shown_once() -> None:
    screen = Screen()
    text = await stream_reply(screen, deltas(["Hello", ", world"], 0.01), interval=None)
    assert text == "Hello, world" and screen.shown == [("Hello, world", True)]
