"""Showing an answer while it is written, by editing one message, throttled.

Telegram and Slack both allow about one edit a second per chat; a faster model
would otherwise hit their rate limits with every token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Protocol


class ShowsText(Protocol):
    """A channel's way of putting the answer so far on screen."""

    async def show(self, markdown: str, *, final: bool = True) -> None:
        """Show `markdown`; `final` is the whole answer, which must be delivered complete."""
        ...


async def stream_reply(
    writer: ShowsText, deltas: AsyncIterable[str], interval: float | None
) -> str:
    """Show text as it arrives, at most one update per `interval` seconds, then all of it;
    with `interval` None (streaming off), only all of it, once.

    The deltas are read on their own task, so a slow update (or a rate-limit
    wait) never holds up the answer: the next update shows everything so far.
    """
    if interval is None:
        text = "".join([delta async for delta in deltas])
        await writer.show(text)
        return text
    parts: list[str] = []
    arrived = asyncio.Event()

    async def read() -> None:
        async for delta in deltas:
            parts.append(delta)
            arrived.set()

    reader = asyncio.create_task(read())
    try:
        while not reader.done():
            waiting = asyncio.create_task(arrived.wait())
            await asyncio.wait({reader, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if reader.done():
                break
            arrived.clear()
            if text := "".join(parts).strip():  # no platform shows an empty message
                await writer.show(text, final=False)
            await asyncio.wait({reader}, timeout=interval)  # the throttle; ends early when done
        reader.result()
    finally:
        reader.cancel()
    text = "".join(parts)
    await writer.show(text)
    return text
