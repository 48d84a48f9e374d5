"""The store for many workers: every process shares one Redis server.

    botkit:turns:{conversation}     a list of turns, oldest first (JSON each)
    botkit:record:{key}             a record (JSON), with an expiry when it has a TTL
    botkit:usage:{day}              a hash: "bot|user|conversation|model|p" and "…|c" → tokens
    botkit:used:{day}:{bot}[:user]  running totals for budget checks

An append is one RPUSH; a claim is one SET NX EX, atomic across workers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from botkit.errors import StoreError
from botkit.messages import Turn
from botkit.stores.base import Store, UsageRecord, UsageTotal

_PREFIX = "botkit"
_USAGE_DAYS_KEPT = 400 * 86400


class RedisStore(Store):
    """Conversations, records and usage in Redis; open it with `await RedisStore.open(url)`."""

    def __init__(self, client: redis.Redis, *, where: str) -> None:
        self._redis = client
        self._where = where

    @classmethod
    async def open(cls, url: str) -> RedisStore:
        client = redis.Redis.from_url(url)
        # The URL may hold a password: errors name only the host.
        where = f"{client.connection_pool.connection_kwargs.get('host', '?')}:" + str(
            client.connection_pool.connection_kwargs.get("port", 6379)
        )
        store = cls(client, where=where)
        try:
            await client.ping()
        except RedisError as err:
            await client.aclose()
            raise store._error(err) from err
        return store

    async def recent(self, key: str, limit: int) -> list[Turn]:
        if limit <= 0:
            return []
        try:
            raw = await self._redis.lrange(f"{_PREFIX}:turns:{key}", -limit, -1)
        except RedisError as err:
            raise self._error(err) from err
        return [Turn(*orjson.loads(item)) for item in raw]

    async def append(self, key: str, turns: Sequence[Turn]) -> None:
        if not turns:
            return
        values = [orjson.dumps([t.role, t.content, t.at, t.tokens]) for t in turns]
        try:
            await self._redis.rpush(f"{_PREFIX}:turns:{key}", *values)
        except RedisError as err:
            raise self._error(err) from err

    async def reset(self, key: str) -> None:
        try:
            await self._redis.delete(f"{_PREFIX}:turns:{key}")
        except RedisError as err:
            raise self._error(err) from err

    async def get_record(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(f"{_PREFIX}:record:{key}")
        except RedisError as err:
            raise self._error(err) from err
        return None if raw is None else dict(orjson.loads(raw))

    async def put_record(
        self, key: str, value: dict[str, Any], *, ttl: float | None = None
    ) -> None:
        expiry = None if ttl is None else max(1, int(ttl * 1000))
        try:
            await self._redis.set(f"{_PREFIX}:record:{key}", orjson.dumps(value), px=expiry)
        except RedisError as err:
            raise self._error(err) from err

    async def delete_record(self, key: str) -> bool:
        try:
            return bool(await self._redis.delete(f"{_PREFIX}:record:{key}"))
        except RedisError as err:
            raise self._error(err) from err

    async def claim(self, key: str, *, ttl: float) -> bool:
        try:
            claimed = await self._redis.set(
                f"{_PREFIX}:record:{key}", b"{}", nx=True, px=max(1, int(ttl * 1000))
            )
        except RedisError as err:
            raise self._error(err) from err
        return bool(claimed)

    async def add_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for r in records:
                    usage = f"{_PREFIX}:usage:{r.day}"
                    field = f"{r.bot}|{r.user}|{r.conversation}|{r.model}"
                    total = r.prompt_tokens + r.completion_tokens
                    pipe.hincrby(usage, f"{field}|p", r.prompt_tokens)
                    pipe.hincrby(usage, f"{field}|c", r.completion_tokens)
                    pipe.incrby(f"{_PREFIX}:used:{r.day}:{r.bot}", total)
                    pipe.incrby(f"{_PREFIX}:used:{r.day}:{r.bot}:{r.user}", total)
                    for key in (
                        usage,
                        f"{_PREFIX}:used:{r.day}:{r.bot}",
                        f"{_PREFIX}:used:{r.day}:{r.bot}:{r.user}",
                    ):
                        pipe.expire(key, _USAGE_DAYS_KEPT)
                await pipe.execute()
        except RedisError as err:
            raise self._error(err) from err

    async def usage_totals(self, *, since: str, bot: str | None = None) -> list[UsageTotal]:
        sums: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        try:
            async for key in self._redis.scan_iter(match=f"{_PREFIX}:usage:*", count=500):
                day = key.decode().rsplit(":", 1)[1]
                if day < since:
                    continue
                for field, value in (await self._redis.hgetall(key)).items():
                    text = field.decode() if isinstance(field, bytes) else field
                    bot_ = text.split("|", 1)[0]  # bot names never hold "|"; user ids might
                    model, kind = text.rsplit("|", 2)[1:]
                    if bot in (None, bot_):
                        sums[(day, bot_, model)][kind == "c"] += int(value)
        except RedisError as err:
            raise self._error(err) from err
        return [UsageTotal(*key, *sums[key]) for key in sorted(sums)]

    async def tokens_used(self, *, day: str, bot: str, user: str | None = None) -> int:
        key = f"{_PREFIX}:used:{day}:{bot}" + ("" if user is None else f":{user}")
        try:
            value = await self._redis.get(key)
        except RedisError as err:
            raise self._error(err) from err
        return int(value or 0)

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _error(self, err: RedisError) -> StoreError:
        return StoreError(f"Redis store at {self._where}: {err}")
