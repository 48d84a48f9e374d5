"""The store for many workers: every process shares one Redis server.

    P:turns:{conversation}        a list of turns, oldest first (JSON each)
    P:turns-offset:{conversation} turns forgotten by resets (so cursors stay valid)
    P:lock:{conversation}         redis-py's Lock: the holder's token, with a lease
    P:record:{key}                a record (JSON), with an expiry when it has a TTL
    P:usage:{day}                 a hash: "bot|user|conversation|model|p" and "…|c" → tokens
    P:used:{day}:{bot}[:user]     running totals for budget checks
    P:rate:{key}                  a GCRA's theoretical arrival time
    P:inbox:{channel}             a stream of accepted items (consumer group "workers")
    P:ready:{channel}             a stream of items for any worker of the channel
    P:dedupe:{key}                what the inbox has seen, for a day
    P:handoff:{id}                a handoff (JSON); P:handoff-open:{conversation} and
                                  P:handoff-desk:{ref} point at it; P:handoffs orders the open;
                                  P:handoffs-of:{conversation} holds every one's id
    P:outcome:{conversation}      a hash: message id → what became of the message (JSON)
    P:feedback:{conversation}     a hash: message id → the vote on its answer (JSON)
    P:outcomes:{bot}, P:votes:{bot}  sorted by time: "{conversation}\\x1f{message id}"
    P:active:{bot}                conversations by the time of their newest outcome
    P:user:{user}                 the conversations a user wrote or voted in
    P:feed                        the pub/sub channel of change notices

P is the prefix (`botkit` unless set), so several deployments can share a server.
An append is one RPUSH (a script when fenced by a lock); a claim one SET NX.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError, ResponseError

from botkit.errors import StoreError
from botkit.messages import Feedback, Handoff, Outcome, Turn
from botkit.stores.base import (
    DEFAULT_LEASE,
    INBOX_TOPIC,
    InboxItem,
    Lease,
    LeaseLost,
    Store,
    UsageRecord,
    UsageTotal,
    Wanted,
    in_order,
)

logger = logging.getLogger(__name__)

_USAGE_DAYS_KEPT = 400 * 86400
_DEDUPE_SECONDS = 24 * 3600
_GROUP = "workers"
_QUIET_FEED = 30.0  # seconds the feed's reader waits for a notice before it looks again
_FOREVER = "1e300"  # "no limit" for Lua's tonumber

_FENCED_APPEND = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
return redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
"""
# The newest turns, read from the end until their tokens (the fourth field) pass the budget.
_RECENT = """
local turns = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
local budget, used, first = tonumber(ARGV[2]), 0, 1
for i = #turns, 1, -1 do
    used = used + cjson.decode(turns[i])[4]
    if used > budget then first = i break end
end
return {unpack(turns, first)}
"""
_RESET = """
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
if n > 0 then redis.call('INCRBY', KEYS[2], n) end
return n
"""
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + tonumber(ARGV[1]) / rate
local wait = new - burst / rate - now
if wait < 0 then wait = 0 end
if wait <= tonumber(ARGV[4]) then
    redis.call('SET', KEYS[1], tostring(new), 'PX', math.max(1000, math.ceil((new - now) * 1000)))
    return tostring(wait)
end
return tostring(math.max(0, tat + tonumber(ARGV[1]) / rate - burst / rate - now))
"""
# Added and read in one script, so every entry of an owned stream is already delivered to
# its owner and `>` never hands one worker another's item.
_INBOX_ADD = """
if ARGV[1] ~= '' then
    if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return false end
end
local id = redis.call('XADD', KEYS[1], '*', 'conversation', ARGV[4], 'payload', ARGV[5])
if ARGV[3] ~= '' then
    redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[3], 'COUNT', '1', 'STREAMS', KEYS[1], '>')
end
return id
"""
# Renewing only what is still this worker's: XCLAIM alone would take back an item that
# another worker claimed after this one's lease ran out.
_RENEW_ITEMS = """
local renewed = {}
for i, id in ipairs(ARGV) do
    if i > 1 then
        local pending = redis.call('XPENDING', KEYS[1], 'workers', id, id, 1)
        if pending[1] and pending[1][2] == ARGV[1] then
            redis.call('XCLAIM', KEYS[1], 'workers', ARGV[1], 0, id, 'JUSTID')
            table.insert(renewed, id)
        end
    end
end
return renewed
"""
_HANDOFF_OPEN = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return ARGV[1]
"""
# Erasing a conversation (ARGV[3] empty), or one user's part of it (ARGV[3], and their
# message ids from ARGV[4] on), with everything that points at what goes, in one script.
# KEYS: turns, turns-offset, outcome hash, feedback hash, handoffs-of, open handoffs.
_ERASE = """
local p, c, u = ARGV[1], ARGV[2], ARGV[3]
local whole = u == ''
local ids = {}
for i = 4, #ARGV do ids[ARGV[i]] = true end
local function mine(id) return type(id) == 'string' and ids[id] end
local function member(id) return c .. '\\31' .. id end
if whole then
    redis.call('DEL', KEYS[1], KEYS[2])
else
    local turns = redis.call('LRANGE', KEYS[1], 0, -1)
    local kept = {}
    for _, raw in ipairs(turns) do
        local t = cjson.decode(raw)
        if not (mine(t[5]) or mine(t[6])) then table.insert(kept, raw) end
    end
    if #kept < #turns then
        redis.call('DEL', KEYS[1])
        for i = 1, #kept, 1000 do
            redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))
        end
        -- counted as forgotten, as a reset counts them, so cursors stay valid
        redis.call('INCRBY', KEYS[2], #turns - #kept)
    end
end
local erased = {}
local outcomes = redis.call('HGETALL', KEYS[3])
for i = 1, #outcomes, 2 do
    local o = cjson.decode(outcomes[i + 1])
    if whole or mine(outcomes[i]) then
        redis.call('HDEL', KEYS[3], outcomes[i])
        redis.call('ZREM', p .. ':outcomes:' .. o['bot'], member(outcomes[i]))
        if whole then
            redis.call('ZREM', p .. ':active:' .. o['bot'], c)
            redis.call('SREM', p .. ':user:' .. o['user'], c)
        end
    end
end
local votes = redis.call('HGETALL', KEYS[4])
for i = 1, #votes, 2 do
    local f = cjson.decode(votes[i + 1])
    if whole or mine(votes[i]) or f['user'] == u then
        redis.call('HDEL', KEYS[4], votes[i])
        redis.call('ZREM', p .. ':votes:' .. f['bot'], member(votes[i]))
        if whole then redis.call('SREM', p .. ':user:' .. f['user'], c) end
    end
end
if not whole then redis.call('SREM', p .. ':user:' .. u, c) end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
    local key = p .. ':handoff:' .. id
    local raw = redis.call('GET', key)
    local h = raw and cjson.decode(raw)
    if whole or (h and h['user_id'] == u) then
        if h and type(h['desk_ref']) == 'string' then
            local desk = p .. ':handoff-desk:' .. h['desk_ref']
            if redis.call('GET', desk) == id then redis.call('DEL', desk) end
        end
        local open = p .. ':handoff-open:' .. c
        if redis.call('GET', open) == id then redis.call('DEL', open) end
        redis.call('DEL', key)
        redis.call('ZREM', KEYS[6], id)
        redis.call('SREM', KEYS[5], id)
        table.insert(erased, id)
    end
end
return erased
"""
_HANDOFF_UPDATE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
if tonumber(cjson.decode(raw)['version']) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == 'resolved' then
    if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
    redis.call('ZREM', KEYS[4], ARGV[4])
end
if ARGV[5] == '1' then redis.call('SET', KEYS[3], ARGV[4]) end
return 1
"""


class RedisStore(Store):
    """Everything in Redis; open it with `await RedisStore.open(url)`."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        where: str,
        prefix: str = "botkit",
        lease: float = DEFAULT_LEASE,
    ) -> None:
        super().__init__(lease=lease)
        self._redis = client
        self._where = where
        self.prefix = prefix
        self.worker = secrets.token_hex(8)
        self._locks: dict[str, Lock] = {}
        self._streams: set[str] = set()
        self._fenced_append = client.register_script(_FENCED_APPEND)
        self._reset = client.register_script(_RESET)
        self._recent = client.register_script(_RECENT)
        self._gcra = client.register_script(_GCRA)
        self._inbox_add = client.register_script(_INBOX_ADD)
        self._renew = client.register_script(_RENEW_ITEMS)
        self._handoff_open = client.register_script(_HANDOFF_OPEN)
        self._handoff_update = client.register_script(_HANDOFF_UPDATE)
        self._erase = client.register_script(_ERASE)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = "botkit",
        lease: float = DEFAULT_LEASE,
        pool_size: int = 100,
        pool_timeout: float = 5.0,
    ) -> RedisStore:
        """Connect; at most `pool_size` connections, and a call waits up to `pool_timeout`
        seconds for a free one (redis-py's default pool fails at once when all are busy),
        and as long for the server to connect or answer (redis-py waits forever: a server
        that stopped answering would hang every request). The URL's own `socket_timeout`
        and `socket_connect_timeout` win."""
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=pool_timeout,
            socket_timeout=pool_timeout,
            socket_connect_timeout=pool_timeout,
        )
        client = redis.Redis.from_pool(pool)
        # The URL may hold a password: errors name only the host.
        kwargs = pool.connection_kwargs
        where = f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', 6379)}"
        store = cls(client, where=where, prefix=prefix, lease=lease)
        try:
            await client.ping()
        except RedisError as err:
            await client.aclose()
            raise store._error(err) from err
        return store

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- conversations ---------------------------------------------------------------

    async def recent(self, key: str, limit: int, *, max_tokens: int | None = None) -> list[Turn]:
        if limit <= 0:
            return []
        turns = self._key("turns", key)
        try:
            if max_tokens is None:
                raw = await self._redis.lrange(turns, -limit, -1)
            else:
                raw = await self._recent(keys=[turns], args=[limit, max_tokens])
        except RedisError as err:
            raise self._error(err) from err
        return [Turn(*orjson.loads(item)) for item in raw]

    async def append(self, key: str, turns: Sequence[Turn], *, lease: Lease | None = None) -> None:
        if not turns:
            return
        values = [
            orjson.dumps([t.role, t.content, t.at, t.tokens, t.id, t.reply_to, t.kind, t.name])
            for t in turns
        ]
        try:
            if lease is None:
                await self._redis.rpush(self._key("turns", key), *values)
                return
            pushed = await self._fenced_append(
                keys=[self._key("turns", key), self._key("lock", key)],
                args=[lease.token, *values],
            )
        except RedisError as err:
            raise self._error(err) from err
        if pushed == -1:
            raise LeaseLost(f"the lock of {key} has passed to another worker")

    async def reset(self, key: str) -> None:
        try:
            await self._reset(keys=[self._key("turns", key), self._key("turns-offset", key)])
        except RedisError as err:
            raise self._error(err) from err

    async def cursor(self, key: str) -> int:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._key("turns-offset", key))
                pipe.llen(self._key("turns", key))
                offset, length = await pipe.execute()
        except RedisError as err:
            raise self._error(err) from err
        return int(offset or 0) + int(length)

    async def turns_since(self, key: str, cursor: int) -> tuple[int, list[Turn]]:
        try:
            offset = int(await self._redis.get(self._key("turns-offset", key)) or 0)
            start = max(cursor - offset, 0)
            raw = await self._redis.lrange(self._key("turns", key), start, -1)
        except RedisError as err:
            raise self._error(err) from err
        return offset + start + len(raw), [Turn(*orjson.loads(item)) for item in raw]

    async def _try_lock(self, lease: Lease) -> bool:
        lock = self._redis.lock(
            self._key("lock", lease.key), timeout=self.lease, blocking=False, thread_local=False
        )
        try:
            taken = await lock.acquire(token=lease.token)
        except RedisError as err:
            raise self._error(err) from err
        if taken:
            self._locks[lease.token] = lock
        return bool(taken)

    async def _renew_lock(self, lease: Lease) -> bool:
        lock = self._locks.get(lease.token)
        if lock is None:
            return False
        try:
            await lock.reacquire()
        except LockError:
            return False
        except RedisError as err:
            raise self._error(err) from err
        return True

    async def _unlock(self, lease: Lease) -> None:
        lock = self._locks.pop(lease.token, None)
        if lock is None:
            return
        try:
            await lock.release()
        except LockError:
            pass  # it ran out, or another worker holds it now
        except RedisError as err:
            raise self._error(err) from err

    # --- records -----------------------------------------------------------------------

    async def get_record(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(self._key("record", key))
        except RedisError as err:
            raise self._error(err) from err
        return None if raw is None else dict(orjson.loads(raw))

    async def put_record(
        self, key: str, value: dict[str, Any], *, ttl: float | None = None
    ) -> None:
        expiry = None if ttl is None else max(1, int(ttl * 1000))
        try:
            await self._redis.set(self._key("record", key), orjson.dumps(value), px=expiry)
        except RedisError as err:
            raise self._error(err) from err

    async def delete_record(self, key: str) -> bool:
        try:
            return bool(await self._redis.delete(self._key("record", key)))
        except RedisError as err:
            raise self._error(err) from err

    async def claim(self, key: str, *, ttl: float) -> bool:
        try:
            claimed = await self._redis.set(
                self._key("record", key), b"{}", nx=True, px=max(1, int(ttl * 1000))
            )
        except RedisError as err:
            raise self._error(err) from err
        return bool(claimed)

    # --- usage -------------------------------------------------------------------------

    async def add_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for r in records:
                    usage = self._key("usage", r.day)
                    field = f"{r.bot}|{r.user}|{r.conversation}|{r.model}"
                    total = r.prompt_tokens + r.completion_tokens
                    used_bot = self._key("used", r.day, r.bot)
                    used_user = self._key("used", r.day, r.bot, r.user)
                    pipe.hincrby(usage, f"{field}|p", r.prompt_tokens)
                    pipe.hincrby(usage, f"{field}|c", r.completion_tokens)
                    pipe.incrby(used_bot, total)
                    pipe.incrby(used_user, total)
                    for key in (usage, used_bot, used_user):
                        pipe.expire(key, _USAGE_DAYS_KEPT)
                await pipe.execute()
        except RedisError as err:
            raise self._error(err) from err

    async def usage_totals(self, *, since: str, bot: str | None = None) -> list[UsageTotal]:
        sums: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        try:
            async for key in self._redis.scan_iter(match=self._key("usage", "*"), count=500):
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
        key = self._key("used", day, bot) if user is None else self._key("used", day, bot, user)
        try:
            value = await self._redis.get(key)
        except RedisError as err:
            raise self._error(err) from err
        return int(value or 0)

    # --- rates -------------------------------------------------------------------------

    async def take_rate(
        self, key: str, cost: float, *, rate: float, burst: float, max_wait: float
    ) -> float:
        limit = _FOREVER if max_wait == float("inf") else repr(max_wait)
        try:
            wait = await self._gcra(
                keys=[self._key("rate", key)], args=[repr(cost), repr(rate), repr(burst), limit]
            )
        except RedisError as err:
            raise self._error(err) from err
        return float(wait)

    # --- the inbox ---------------------------------------------------------------------

    async def inbox_add(
        self,
        *,
        channel: str,
        conversation: str,
        payload: dict[str, Any],
        dedupe: str | None = None,
        owned: bool = True,
    ) -> InboxItem | None:
        kind = "inbox" if owned else "ready"
        stream = await self._stream(kind, channel)
        try:
            entry = await self._inbox_add(
                keys=[stream, self._key("dedupe", dedupe or "")],
                args=[
                    "1" if dedupe else "",
                    _DEDUPE_SECONDS,
                    self.worker if owned else "",
                    conversation,
                    orjson.dumps(payload),
                ],
            )
        except RedisError as err:
            raise self._error(err) from err
        if entry is None:
            return None
        item = InboxItem(_item_id(kind, channel, entry), channel, conversation, payload)
        if owned:
            return self._hold(item)
        await self.publish(INBOX_TOPIC)
        return item

    async def inbox_take(self, channels: Sequence[str], *, limit: int = 20) -> list[InboxItem]:
        taken: list[InboxItem] = []
        idle = int(self.lease * 1000)
        try:
            for channel in channels:
                for kind in ("inbox", "ready"):
                    stream = await self._stream(kind, channel)
                    # What a dead worker held: XAUTOCLAIM hands it over, counting the delivery.
                    claimed: list[Any] = await self._redis.xautoclaim(
                        stream, _GROUP, self.worker, idle, "0-0", count=limit
                    )
                    for entry_id, fields in claimed[1]:
                        if fields:  # None once deleted
                            taken.append(await self._recovered(kind, channel, entry_id, fields))
                ready = await self._stream("ready", channel)
                fresh: Any = await self._redis.xreadgroup(
                    _GROUP, self.worker, {ready: ">"}, count=limit
                )
                for _, entries in fresh:
                    for entry_id, fields in entries:
                        taken.append(_item(_item_id("ready", channel, entry_id), channel, fields))
        except RedisError as err:
            raise self._error(err) from err
        return [self._hold(item) for item in taken[:limit]]

    async def _recovered(
        self, kind: str, channel: str, entry_id: bytes, fields: dict[bytes, bytes]
    ) -> InboxItem:
        stream = self._key(kind, channel)
        pending = await self._redis.xpending_range(
            stream, _GROUP, min=entry_id, max=entry_id, count=1, consumername=self.worker
        )
        attempts = int(pending[0]["times_delivered"]) if pending else 2
        return _item(_item_id(kind, channel, entry_id), channel, fields, attempts)

    async def inbox_done(self, item: InboxItem) -> None:
        self._release(item)
        stream, entry = self._entry(item)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(stream, _GROUP, entry)
                pipe.xdel(stream, entry)
                await pipe.execute()
        except RedisError as err:
            raise self._error(err) from err

    async def inbox_later(self, item: InboxItem, *, delay: float) -> None:
        self._release(item)
        stream, entry = self._entry(item)
        # Claimed with an idle time such that XAUTOCLAIM hands it out after `delay`.
        idle = max(0, int((self.lease - delay) * 1000))
        try:
            await self._redis.xclaim(
                stream, _GROUP, self.worker, 0, [entry], idle=idle, justid=True
            )
        except RedisError as err:
            raise self._error(err) from err

    async def _renew_items(self, items: Sequence[InboxItem]) -> set[str]:
        by_stream: defaultdict[str, list[InboxItem]] = defaultdict(list)
        for item in items:
            by_stream[self._entry(item)[0]].append(item)
        renewed: set[str] = set()
        try:
            for stream, held in by_stream.items():
                entries = [self._entry(item)[1] for item in held]
                still = {
                    _text(e) for e in await self._renew(keys=[stream], args=[self.worker, *entries])
                }
                renewed |= {item.id for item in held if self._entry(item)[1] in still}
        except RedisError as err:
            raise self._error(err) from err
        return renewed

    async def _stream(self, kind: str, channel: str) -> str:
        stream = self._key(kind, channel)
        if stream not in self._streams:
            try:
                await self._redis.xgroup_create(stream, _GROUP, id="$", mkstream=True)
            except ResponseError as err:
                if "BUSYGROUP" not in str(err):
                    raise self._error(err) from err
            except RedisError as err:
                raise self._error(err) from err
            self._streams.add(stream)
        return stream

    def _entry(self, item: InboxItem) -> tuple[str, str]:
        kind, channel, entry = item.id.split("|", 2)
        return self._key(kind, channel), entry

    # --- handoffs ----------------------------------------------------------------------

    async def handoff_open(self, handoff: Handoff) -> Handoff:
        try:
            current = await self._handoff_open(
                keys=[
                    self._key("handoff-open", handoff.conversation),
                    self._key("handoff", handoff.id),
                    self._key("handoffs"),
                    self._key("handoffs-of", handoff.conversation),
                ],
                args=[handoff.id, orjson.dumps(handoff.to_json()), handoff.created],
            )
        except RedisError as err:
            raise self._error(err) from err
        current_id = current.decode() if isinstance(current, bytes) else str(current)
        if current_id == handoff.id:
            return handoff
        existing = await self.handoff_get(current_id)
        return existing if existing is not None else await self.handoff_open(handoff)

    async def handoff_get(self, handoff_id: str) -> Handoff | None:
        try:
            raw = await self._redis.get(self._key("handoff", handoff_id))
        except RedisError as err:
            raise self._error(err) from err
        return None if raw is None else Handoff.from_json(orjson.loads(raw))

    async def handoff_current(self, conversation: str) -> Handoff | None:
        return await self._handoff_at(self._key("handoff-open", conversation))

    async def handoff_by_desk(self, desk_ref: str) -> Handoff | None:
        return await self._handoff_at(self._key("handoff-desk", desk_ref))

    async def _handoff_at(self, pointer: str) -> Handoff | None:
        try:
            handoff_id = await self._redis.get(pointer)
        except RedisError as err:
            raise self._error(err) from err
        return None if handoff_id is None else await self.handoff_get(_text(handoff_id))

    async def handoff_update(self, handoff: Handoff) -> Handoff | None:
        updated = Handoff.from_json({**handoff.to_json(), "version": handoff.version + 1})
        try:
            changed = await self._handoff_update(
                keys=[
                    self._key("handoff", handoff.id),
                    self._key("handoff-open", handoff.conversation),
                    self._key("handoff-desk", handoff.desk_ref or ""),
                    self._key("handoffs"),
                ],
                args=[
                    handoff.version,
                    orjson.dumps(updated.to_json()),
                    handoff.state,
                    handoff.id,
                    "1" if handoff.desk_ref else "",
                ],
            )
        except RedisError as err:
            raise self._error(err) from err
        return updated if changed else None

    async def handoffs_open(self, bot: str | None = None) -> list[Handoff]:
        try:
            ids = await self._redis.zrange(self._key("handoffs"), 0, -1)
            keys = [self._key("handoff", _text(i)) for i in ids]
            raws = await self._redis.mget(keys) if keys else []
        except RedisError as err:
            raise self._error(err) from err
        handoffs = [Handoff.from_json(orjson.loads(raw)) for raw in raws if raw is not None]
        return [h for h in handoffs if h.open and bot in (None, h.bot)]

    # --- outcomes and feedback ------------------------------------------------------------

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for o in outcomes:
                    pipe.hset(self._key("outcome", o.conversation), o.message_id, _json(o))
                    pipe.zadd(self._key("outcomes", o.bot), {_member(o): o.at})
                    pipe.zadd(self._key("active", o.bot), {o.conversation: o.at}, gt=True)
                    pipe.sadd(self._key("user", o.user), o.conversation)
                await pipe.execute()
        except RedisError as err:
            raise self._error(err) from err

    async def outcomes(
        self,
        *,
        bot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> list[Outcome]:
        wanted = Wanted(bot, since, until, user, conversation)
        raws = await self._logged("outcome", "outcomes", wanted)
        found = [Outcome.from_json(orjson.loads(raw)) for raw in raws]
        return in_order([o for o in found if wanted(o)])

    async def put_feedback(self, feedback: Feedback) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                hash_key = self._key("feedback", feedback.conversation)
                pipe.hset(hash_key, feedback.message_id, _json(feedback))
                pipe.zadd(self._key("votes", feedback.bot), {_member(feedback): feedback.at})
                pipe.sadd(self._key("user", feedback.user), feedback.conversation)
                await pipe.execute()
        except RedisError as err:
            raise self._error(err) from err

    async def feedback(
        self,
        *,
        bot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> list[Feedback]:
        wanted = Wanted(bot, since, until, user, conversation)
        raws = await self._logged("feedback", "votes", wanted)
        found = [Feedback.from_json(orjson.loads(raw)) for raw in raws]
        return in_order([f for f in found if wanted(f)])

    async def _logged(self, kind: str, index: str, wanted: Wanted) -> list[bytes]:
        """The JSON of the outcomes (or votes) a query may want, read the cheapest way its
        filters allow: one conversation's hash, a user's conversations, or a bot's time
        index. The caller filters them exactly."""
        bot, since, until = wanted.bot, wanted.since, wanted.until
        try:
            if wanted.conversation is not None or wanted.user is not None:
                if wanted.conversation is not None:
                    conversations = [wanted.conversation]
                else:
                    members = await self._redis.smembers(self._key("user", str(wanted.user)))
                    conversations = sorted(_text(m) for m in members)
                async with self._redis.pipeline(transaction=False) as pipe:
                    for c in conversations:
                        pipe.hvals(self._key(kind, c))
                    values: list[list[bytes]] = await pipe.execute()
                return [raw for hash_values in values for raw in hash_values]
            if bot is not None:
                indexes = [self._key(index, bot)]
            else:
                pattern = self._key(index, "*")
                indexes = [_text(k) async for k in self._redis.scan_iter(match=pattern)]
            low = "-inf" if since is None else repr(since)
            high = "+inf" if until is None else f"({until!r}"
            by_conversation: defaultdict[str, list[str]] = defaultdict(list)
            for key in indexes:
                for member in await self._redis.zrangebyscore(key, low, high):
                    c, _, message_id = _text(member).rpartition("\x1f")
                    by_conversation[c].append(message_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                for c, message_ids in by_conversation.items():
                    pipe.hmget(self._key(kind, c), message_ids)
                found: list[list[bytes | None]] = await pipe.execute()
        except RedisError as err:
            raise self._error(err) from err
        return [raw for raws in found for raw in raws if raw is not None]

    async def idle_conversations(self, *, bot: str, before: float) -> list[str]:
        try:
            members = await self._redis.zrangebyscore(
                self._key("active", bot), "-inf", f"({before!r}"
            )
        except RedisError as err:
            raise self._error(err) from err
        return sorted(_text(m) for m in members)

    # --- erasure -------------------------------------------------------------------------

    async def erase(
        self, conversation: str, *, user: str | None = None, messages: Sequence[str] = ()
    ) -> list[str]:
        keys = [
            self._key("turns", conversation),
            self._key("turns-offset", conversation),
            self._key("outcome", conversation),
            self._key("feedback", conversation),
            self._key("handoffs-of", conversation),
            self._key("handoffs"),
        ]
        try:
            # A user id is never empty (channels always know who wrote), so "" means all.
            erased = await self._erase(
                keys=keys, args=[self.prefix, conversation, user or "", *messages]
            )
        except RedisError as err:
            raise self._error(err) from err
        return sorted(_text(handoff_id) for handoff_id in erased)

    async def erase_usage(self, *, user: str, bot: str | None = None) -> int:
        if not user:  # "" is the anonymous row itself
            return 0
        named = 0
        try:
            async for raw_key in self._redis.scan_iter(match=self._key("usage", "*"), count=500):
                key = _text(raw_key)
                fields = await self._redis.hgetall(key)
                moved: defaultdict[str, int] = defaultdict(int)
                gone = []
                for raw_field, value in fields.items():
                    field = _text(raw_field)
                    owner = _usage_owner(field)
                    if owner is None or owner[1] != user or bot not in (None, owner[0]):
                        continue
                    model, kind = field.rsplit("|", 2)[1:]
                    moved[f"{owner[0]}|||{model}|{kind}"] += int(value)
                    gone.append(field)
                if gone:
                    named += len(gone) // 2  # a row is two fields: its prompt and completion
                    async with self._redis.pipeline(transaction=True) as pipe:
                        for field, tokens in moved.items():
                            pipe.hincrby(key, field, tokens)
                        pipe.hdel(key, *gone)
                        await pipe.execute()
            async for raw_key in self._redis.scan_iter(match=self._key("used", "*"), count=500):
                # used:{day}:{bot}:{user}; used:{day}:{bot} is the bot's total and stays
                parts = _text(raw_key)[len(self._key("used", "")) :].split(":", 2)
                if len(parts) == 3 and parts[2] == user and bot in (None, parts[1]):
                    await self._redis.delete(raw_key)
        except RedisError as err:
            raise self._error(err) from err
        return named

    # --- the feed ----------------------------------------------------------------------

    async def _publish_remote(self, topic: str) -> None:
        try:
            await self._redis.publish(self._key("feed"), topic)
        except RedisError as err:
            raise self._error(err) from err

    async def _listen(self, ready: asyncio.Event) -> None:
        """One pub/sub connection per process, fanned out to its readers."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._key("feed"))
                ready.set()
                while True:
                    # A bounded wait (None when nothing came), never the socket timeout:
                    # a quiet feed is no failure.
                    message = await pubsub.get_message(timeout=_QUIET_FEED)
                    if message is not None:
                        self._wake(_text(message["data"]))
            except RedisError as err:
                ready.set()  # readers fall back to polling until it is back
                logger.warning("Redis feed lost (%s); reconnecting", err)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        await super().aclose()
        await self._redis.aclose()

    def _error(self, err: RedisError) -> StoreError:
        return StoreError(f"Redis store at {self._where}: {err}")


def _json(item: Outcome | Feedback) -> bytes:
    return orjson.dumps(item.to_json())


def _member(item: Outcome | Feedback) -> str:
    """An outcome's (or a vote's) entry in its bot's time index."""
    return f"{item.conversation}\x1f{item.message_id}"


def _usage_owner(field: str) -> tuple[str, str] | None:
    """The bot and user of a usage field "bot|user|conversation|model|p"; None for the
    anonymous row. User ids may hold "|": the conversation, which starts with the bot's
    name and a slash, marks where a user id ends."""
    bot, _, rest = field.partition("|")
    head = rest.rsplit("|", 2)[0]  # user|conversation
    user, separator, _ = head.rpartition(f"|{bot}/")
    if not separator or not user:
        return None
    return bot, user


def _item_id(kind: str, channel: str, entry: bytes | str) -> str:
    return f"{kind}|{channel}|{_text(entry)}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _item(item_id: str, channel: str, fields: dict[bytes, bytes], attempts: int = 1) -> InboxItem:
    return InboxItem(
        item_id,
        channel,
        fields[b"conversation"].decode(),
        orjson.loads(fields[b"payload"]),
        attempts,
    )
