from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.stores import Store, open_store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store implementation; the contract suite runs against each."""
    urls = {"memory": "memory://", "sqlite": "sqlite:///store/botkit.db"}
    async with await open_store(urls[request.param], home=tmp_path) as opened:
        yield opened
