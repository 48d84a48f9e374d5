"""Case 6: the store under a realistic size. Append a user/assistant pair and load the last
20 turns of a conversation, with 100,000 conversations of 20 turns already in the file.

    python -m bench.store worker --conversations 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.support import Table, median, percentile, run_worker


def run(quick: bool) -> Table:
    conversations = 2_000 if quick else 100_000
    table = Table(
        "Store: append + load",
        f"SQLite file with {conversations:,} conversations × 20 turns; append a pair, then load "
        "the last 20 turns of a random conversation; one at a time",
        ["store", "append µs median", "append µs p99", "load µs median", "load µs p99"],
    )
    result = run_worker("bench.store", ["worker", "--conversations", str(conversations)])
    table.add(
        "sqlite",
        result["append_median"],
        result["append_p99"],
        result["load_median"],
        result["load_p99"],
    )
    table.notes.append("Redis: no Redis store exists yet")
    return table


async def measure(conversations: int, operations: int = 3000) -> dict[str, float]:
    from botkit.messages import Turn
    from botkit.stores.sqlite import SqliteStore

    text = "A customer question or an answer of ordinary length, about forty words long. " * 3
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        async with await SqliteStore.open(path):
            pass  # create the schema
        with sqlite3.connect(path) as db:  # fill the file fast, outside the code measured
            now = time.time()
            db.executemany(
                "INSERT INTO turns (conversation, role, content, at, tokens)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    (f"bench/web/c{c}", "user" if t % 2 == 0 else "assistant", text, now, 40)
                    for c in range(conversations)
                    for t in range(20)
                ),
            )
        rng = random.Random(1)
        appends, loads = [], []
        async with await SqliteStore.open(path) as store:
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
    parser.add_argument("--conversations", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.conversations))))


if __name__ == "__main__":
    main()
