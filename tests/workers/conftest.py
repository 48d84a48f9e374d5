"""Stores that several `botkit serve` processes can share: an SQLite file, Redis (under a key
prefix of the test's own) and PostgreSQL (in a schema of the test's own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.testing import faq_file, write_bot
from tests.stores.conftest import REDIS_URL, postgres_schema, redis_prefix


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def shared_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    """The environment that points every worker at one store."""
    if request.param == "sqlite":
        yield {"BOTKIT_STORE_URL": f"sqlite:///{tmp_path / 'shared.db'}"}
        return
    if request.param == "postgres":
        async for url in postgres_schema():
            yield {"BOTKIT_STORE_URL": url}
        return
    async for prefix in redis_prefix():
        yield {"BOTKIT_STORE_URL": REDIS_URL, "BOTKIT_STORE_PREFIX": prefix}


@pytest.fixture
def cluster_home(tmp_path: Path) -> Path:
    write_bot(
        tmp_path,
        "shop",
        faq={"hours.md": faq_file("When are you open?", "Nine to five.")},
        settings="history_turns = 100\n",
    )
    return tmp_path
