"""Case 3: many conversations at once. N users each send one message at the same moment;
the mock LLM answers every request after 500 ms. Wall time until every reply is stored
(nothing may serialize: the target is under 0.9 s for 1,000 users, 6 s for 10,000) and
peak memory.

    python -m bench.burst worker BASE_URL --users 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from bench.data import workload
from bench.support import Table, mock_llm, run_worker
from botkit.cli import run_async, tune_collector

LATENCY_MS = 500


def run(quick: bool) -> Table:
    sizes = (100, 1_000) if quick else (1_000, 10_000)
    table = Table(
        "Many conversations at once",
        f"N users send one message each at once through the real pipeline (SQLite store, "
        f"100-snippet FAQ); mock LLM answers after {LATENCY_MS} ms; default settings "
        "(a pool of 1,000 connections to the LLM, 5 s to connect; the collector tuned as "
        "botkit serve tunes it)",
        ["users", "wall s", "botkit s (wall - 0.5)", "peak RSS MB", "target"],
    )
    table.notes.append(f"messages: {workload()}")
    with mock_llm(LATENCY_MS) as base_url:
        for users in sizes:
            result = run_worker("bench.burst", ["worker", base_url, "--users", str(users)])
            target = "< 0.9 s, < 250 MB" if users <= 1000 else "< 6 s" if users <= 10_000 else "-"
            table.add(
                users,
                result["wall"],
                result["wall"] - LATENCY_MS / 1000,
                result["peak_rss_mb"],
                target,
            )
    return table


async def measure(base_url: str, users: int) -> dict[str, float]:
    from bench.bots import make_home
    from bench.data import questions
    from botkit.app import BotApp
    from botkit.home import BotHome
    from botkit.messages import IncomingMessage
    from botkit.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp), 100)
        bot = BotHome(home).load_checked("bench")
        settings = Settings(home=home, llm={"base_url": base_url, "api_key": "sk-bench"})
        asked = questions(users)
        async with BotApp(settings=settings, bots=[bot]) as app:
            tune_collector()  # as `botkit serve` does once it has started
            pipeline = app.pipelines["bench"]
            messages = [
                IncomingMessage(
                    channel="bench",
                    bot="bench",
                    conversation_id=f"u{i}",
                    user_id=f"u{i}",
                    text=text,
                )
                for i, text in enumerate(asked)
            ]
            started = time.perf_counter()
            replies = await asyncio.gather(*(pipeline.handle(m) for m in messages))
            wall = time.perf_counter() - started
            stored = sum(
                [len(await app.store.recent(m.conversation_key, 2)) == 2 for m in messages]
            )
            failed = sum(1 for r in replies if r is None or r.error)
    if stored != users or failed:
        raise RuntimeError(f"{users - stored} replies not stored, {failed} failed")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall": wall, "peak_rss_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["worker"])
    parser.add_argument("base_url")
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(run_async(measure(args.base_url, args.users))))


if __name__ == "__main__":
    main()
