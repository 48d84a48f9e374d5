"""Case 2: what the whole pipeline costs per message, on top of the LLM.

Messages go through the real pipeline (normalized message → SQLite store → FAQ
selection → template → completion client → store → reply) against a zero-latency
local mock LLM on the other core, one at a time; the CPU time of this process
(all its threads) is what botkit adds.

    python -m bench.pipeline worker BASE_URL --snippets 10 --turns 2 --messages 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.data import workload
from bench.support import Table, median, mock_llm, percentile, run_worker
from botkit.cli import run_async

ROUNDS = 10


def run(quick: bool) -> Table:
    messages = 300 if quick else 3000
    sizes = (10, 1_000) if quick else (10, 10_000)
    table = Table(
        "Pipeline overhead per message",
        f"real pipeline, SQLite store, zero-latency mock LLM on the other core; {messages} "
        "messages one at a time over 100 conversations (median of the messages), the same "
        "streamed, then again with 64 in flight (median of 10 rounds); CPU of the botkit "
        "process (all its threads)",
        [
            "snippets/history",
            "cpu µs median",
            "cpu µs p99",
            "msgs/s",
            "streamed: cpu µs median",
            "64 in flight: cpu µs median",
            "64 in flight: msgs/s",
            "target µs",
        ],
    )
    table.notes.append(f"messages and FAQ: {workload()}")
    with mock_llm(0) as base_url:
        for snippets in sizes:
            for turns in (2, 200):
                result = run_worker(
                    "bench.pipeline",
                    [
                        "worker",
                        base_url,
                        "--snippets",
                        str(snippets),
                        "--turns",
                        str(turns),
                        "--messages",
                        str(messages),
                    ],
                )
                target = 400 if snippets <= 10 else 600
                table.add(
                    f"{snippets}/{turns} turns",
                    result["median_us"],
                    result["p99_us"],
                    result["per_second"],
                    result["streamed_us"],
                    result["loaded_us"],
                    result["loaded_per_second"],
                    target,
                )
    return table


async def measure(base_url: str, snippets: int, turns: int, messages: int) -> dict[str, float]:
    from bench.bots import make_home
    from bench.data import questions
    from botkit.app import BotApp
    from botkit.home import BotHome
    from botkit.messages import IncomingMessage, Turn
    from botkit.prompting.tokens import count_message_tokens
    from botkit.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        # history_turns caps what is loaded, so every message sees `turns` turns of history.
        home = make_home(Path(tmp), snippets, settings=f"history_turns = {turns}\n")
        bot = BotHome(home).load_checked("bench")
        settings = Settings(home=home, llm={"base_url": base_url, "api_key": "sk-bench"})
        asked = questions(messages + 1000)[1000:]
        async with BotApp(settings=settings, bots=[bot]) as app:
            pipeline = app.pipelines["bench"]
            conversations = [f"user{i}" for i in range(100)]
            for user in conversations:  # every conversation starts with `turns` turns
                key = f"bench/bench/{user}"
                text = "an earlier question about my account and a card payment " * 3
                await app.store.append(
                    key,
                    [
                        Turn(
                            "user" if i % 2 == 0 else "assistant",
                            text,
                            time.time(),
                            count_message_tokens(text),
                        )
                        for i in range(turns)
                    ],
                )
            cpu_us = []
            started = time.perf_counter()
            for i, text in enumerate(asked):
                user = conversations[i % len(conversations)]
                message = IncomingMessage(
                    channel="bench", bot="bench", conversation_id=user, user_id=user, text=text
                )
                before = time.process_time()
                await pipeline.handle(message)
                cpu_us.append((time.process_time() - before) * 1e6)
            wall = time.perf_counter() - started
            # The same messages streamed, as the chat page and Slack ask for them.
            streamed_us = []
            for i, text in enumerate(asked):
                user = conversations[i % len(conversations)]
                message = IncomingMessage(
                    channel="bench", bot="bench", conversation_id=user, user_id=user, text=text
                )
                before = time.process_time()
                async for _ in pipeline.stream(message):
                    pass
                streamed_us.append((time.process_time() - before) * 1e6)
            # The same messages again with 64 conversations in flight, as a busy bot runs,
            # in ten rounds: CPU per message is only known per round, and the median of
            # the rounds is the statistic, as it is one at a time.
            rounds = [asked[i::ROUNDS] for i in range(ROUNDS)]
            loaded_cpu_us, loaded_wall = [], 0.0
            for batch in rounds:

                async def worker(conversation: int, queue: list[str]) -> None:
                    while queue:
                        user = conversations[conversation]
                        await pipeline.handle(
                            IncomingMessage(
                                channel="bench",
                                bot="bench",
                                conversation_id=user,
                                user_id=user,
                                text=queue.pop(),
                            )
                        )

                started, cpu = time.perf_counter(), time.process_time()
                queue = list(batch)
                await asyncio.gather(*(worker(i, queue) for i in range(64)))
                loaded_wall += time.perf_counter() - started
                loaded_cpu_us.append((time.process_time() - cpu) / len(batch) * 1e6)
    warm = cpu_us[len(cpu_us) // 10 :]  # the first tenth warms caches and connections
    return {
        "median_us": median(warm),
        "p99_us": percentile(warm, 0.99),
        "per_second": len(asked) / wall,
        "streamed_us": median(streamed_us),
        "loaded_us": median(loaded_cpu_us),
        "loaded_per_second": len(asked) / loaded_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["worker"])
    parser.add_argument("base_url")
    parser.add_argument("--snippets", type=int, default=10)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(run_async(measure(args.base_url, args.snippets, args.turns, args.messages))))


if __name__ == "__main__":
    main()
