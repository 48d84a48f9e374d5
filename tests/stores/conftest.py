from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.stores import Store, open_store

REDIS_URL = os.environ.get("BOTKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store implementation; the contract suite runs against each."""
    if request.param == "redis":
        await _fresh_redis()
    urls = {"memory": "memory://", "sqlite": "sqlite:///store/botkit.db", "redis": REDIS_URL}
    async with await open_store(urls[request.param], home=tmp_path) as opened:
        yield opened


async def _fresh_redis() -> None:
    """An empty test database, or a skip with the reason (never under CI)."""
    import redis.asyncio as redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    except RedisError as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Redis at {REDIS_URL}: {err}")
        pytest.skip(f"no Redis at {REDIS_URL} ({err}); start one to run the Redis store tests")
    finally:
        await client.aclose()
