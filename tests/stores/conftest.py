"""Every store, opened fresh for each test; and pairs of stores sharing one backend, as two
workers would.

Redis tests use `redis://127.0.0.1:6379/15` (or `BOTKIT_TEST_REDIS_URL`) under a key
prefix of their own, deleted afterwards: no test flushes a database. PostgreSQL tests use
`postgresql://postgres@127.0.0.1:5432/test` (or `BOTKIT_TEST_POSTGRES_URL`), each in a
schema of its own, created for the test and dropped after it: nothing else is touched.
Both skip with the reason when no server answers, except under `CI`, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from botkit.stores import Store, open_store

REDIS_URL = os.environ.get("BOTKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "BOTKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
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


def in_schema(url: str, schema: str) -> str:
    """The URL with `schema` first on its search_path, so the store's tables go there."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


async def postgres_schema() -> AsyncIterator[str]:
    """A URL whose tables go in a schema no other test uses, dropped afterwards."""
    import asyncpg

    schema = f"test_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs PostgreSQL at {POSTGRES_URL}: {err}")
        pytest.skip(
            f"no PostgreSQL at {POSTGRES_URL} ({err}); start one to run the PostgreSQL tests"
        )
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield in_schema(POSTGRES_URL, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def stores(backend: str, home: Path) -> AsyncIterator[OpenStore]:
    """Opens stores of one backend, all sharing it; closes them (and cleans up) after."""
    opened: list[Store] = []
    urls = {"memory": "memory://", "sqlite": "sqlite:///store/botkit.db", "redis": REDIS_URL}
    prefixes = redis_prefix() if backend == "redis" else None
    prefix = await anext(prefixes) if prefixes is not None else "botkit"
    schemas = postgres_schema() if backend == "postgres" else None
    if schemas is not None:
        urls["postgres"] = await anext(schemas)

    async def open_one() -> Store:
        store = await open_store(urls[backend], home=home, lease=LEASE, prefix=prefix)
        opened.append(store)
        return store

    try:
        yield open_one
    finally:
        for store in opened:
            await store.aclose()
        for cleanup in (prefixes, schemas):
            if cleanup is not None:
                await anext(cleanup, None)


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store implementation; the contract suite runs against each."""
    async for open_one in stores(request.param, tmp_path):
        yield await open_one()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one backend: two workers (processes) sharing it."""
    async for open_one in stores(request.param, tmp_path):
        yield await open_one(), await open_one()
