"""Every store, opened fresh for each test; and pairs of stores sharing one backend, as two
workers would.

Redis tests use `redis://127.0.0.1:6379/15` (or `BOTKIT_TEST_REDIS_URL`) under a key
prefix of their own, deleted afterwards: no test flushes a database. They skip with the
reason when no server answers, except under `CI`, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from botkit.stores import Store, open_store

REDIS_URL = os.environ.get("BOTKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LEASE = 0.6
"""A short lease, so a "dead" worker's locks and items pass on within a test."""

OpenStore = Callable[[], Awaitable[Store]]


async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    import redis.asyncio as redis
    from redis.exceptions import RedisError

    prefix = f"test-{secrets.token_hex(6)}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except RedisError as err:
        await client.aclose()
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Redis at {REDIS_URL}: {err}")
        pytest.skip(f"no Redis at {REDIS_URL} ({err}); start one to run the Redis store tests")
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def stores(backend: str, home: Path) -> AsyncIterator[OpenStore]:
    """Opens stores of one backend, all sharing it; closes them (and cleans up) after."""
    opened: list[Store] = []
    prefixes = redis_prefix() if backend == "redis" else None
    prefix = await anext(prefixes) if prefixes is not None else "botkit"
    urls = {"memory": "memory://", "sqlite": "sqlite:///store/botkit.db", "redis": REDIS_URL}

    async def open_one() -> Store:
        store = await open_store(urls[backend], home=home, lease=LEASE, prefix=prefix)
        opened.append(store)
        return store

    try:
        yield open_one
    finally:
        for store in opened:
            await store.aclose()
        if prefixes is not None:
            await anext(prefixes, None)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store implementation; the contract suite runs against each."""
    async for open_one in stores(request.param, tmp_path):
        yield await open_one()


@pytest.fixture(params=["sqlite", "redis"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one backend: two workers (processes) sharing it."""
    async for open_one in stores(request.param, tmp_path):
        yield await open_one(), await open_one()
