"""Case 6: the store under a realistic size. Append a user/assistant pair and load the last
20 turns of a conversation, with 100,000 conversations of 20 turns already stored.

    python -m bench.store worker sqlite --conversations 100000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.support import Table, median, percentile, redis_server, run_worker
from botkit.cli import run_async


def run(quick: bool) -> Table:
    conversations = 2_000 if quick else 100_000
    table = Table(
        "Store: append + load",
        f"{conversations:,} conversations × 20 turns stored; append a pair, then load the last "
        "20 turns of a random conversation; one at a time (Redis: a server of the bench's "
        "own on a free port, nothing on disk)",
        ["store", "append µs median", "append µs p99", "load µs median", "load µs p99"],
    )
    for store in ("sqlite", "redis"):
        args = ["worker", store, "--conversations", str(conversations)]
        try:
            with contextlib.ExitStack() as stack:
                if store == "redis":
                    args += ["--redis-url", stack.enter_context(redis_server())]
                result = run_worker("bench.store", args)
        except RuntimeError as err:
            table.notes.append(f"{store}: cannot run ({str(err).splitlines()[-1]})")
            continue
        table.add(
            store,
            result["append_median"],
            result["append_p99"],
            result["load_median"],
            result["load_p99"],
        )
    return table


TEXT = "A customer question or an answer of ordinary length, about forty words long. " * 3


async def fill_sqlite(path: Path, conversations: int) -> None:
    from botkit.stores.sqlite import SqliteStore

    async with await SqliteStore.open(path):
        pass  # create the schema
    with sqlite3.connect(path) as db:  # fill the file fast, outside the code measured
        now = time.time()
        db.executemany(
            "INSERT INTO turns (conversation, role, content, at, tokens) VALUES (?, ?, ?, ?, ?)",
            (
                (f"bench/web/c{c}", "user" if t % 2 == 0 else "assistant", TEXT, now, 40)
                for c in range(conversations)
                for t in range(20)
            ),
        )


async def fill_redis(url: str, conversations: int) -> None:
    import orjson
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)  # the bench's own server: empty when it starts
    now = time.time()
    turn = [orjson.dumps([role, TEXT, now, 40]) for role in ("user", "assistant")]
    for start in range(0, conversations, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for c in range(start, min(start + 1000, conversations)):
                pipe.rpush(f"botkit:turns:bench/web/c{c}", *(turn * 10))
            await pipe.execute()
    await client.aclose()


async def measure(
    kind: str, conversations: int, redis_url: str = "", operations: int = 3000
) -> dict[str, float]:
    from botkit.messages import Turn
    from botkit.stores import open_store

    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
            await fill_sqlite(Path(tmp) / "bench.db", conversations)
        else:
            url = redis_url
            await fill_redis(url, conversations)
        text = TEXT
        rng = random.Random(1)
        appends, loads = [], []
        async with await open_store(url, home=Path(tmp)) as store:
            for _ in range(operations):
                key = f"bench/web/c{rng.randrange(conversations)}"
                started = time.perf_counter()
                await store.append(
                    key,
                    [Turn("user", text, time.time(), 40), Turn("assistant", text, time.time(), 40)],
                )
                appended = time.perf_counter()
                turns = await store.load(key, limit=20)
                loads.append((time.perf_counter() - appended) * 1e6)
                appends.append((appended - started) * 1e6)
                assert len(turns) == 20
    return {
        "append_median": median(appends),
        "append_p99": percentile(appends, 0.99),
        "load_median": median(loads),
        "load_p99": percentile(loads, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["worker"])
    parser.add_argument("store", choices=["sqlite", "redis"])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--redis-url", default="", help="the bench's own Redis (redis store)")
    args = parser.parse_args()
    print(json.dumps(run_async(measure(args.store, args.conversations, args.redis_url))))


if __name__ == "__main__":
    main()
