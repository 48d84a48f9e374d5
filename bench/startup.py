"""Case 7: start-up. `botkit --help`, and `botkit chat` to the first reply for the offline
demo bot (each command imports only what it needs)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.support import Table, median

REPO = Path(__file__).resolve().parents[1]
BOTKIT = str(Path(sys.executable).parent / "botkit")


def run(quick: bool) -> Table:
    repeats = 3 if quick else 7
    table = Table(
        "Start-up",
        f"wall time of a fresh process, median of {repeats}; the demo bot, offline, SQLite store",
        ["command", "wall ms median", "wall ms min"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "BOTKIT_HOME": str(REPO),
            "BOTKIT_STORE_URL": f"sqlite:///{tmp}/startup.db",
        }
        env = {k: v for k, v in env.items() if not k.startswith(("BOTKIT_LLM", "OPENAI_"))}
        for label, args, stdin in (
            ("botkit --help", ["--help"], None),
            ("botkit chat nimbus → first reply", ["chat", "nimbus"], "How much is Plus?\n"),
        ):
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                subprocess.run(
                    [BOTKIT, *args],
                    input=stdin,
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                times.append((time.perf_counter() - started) * 1000)
            table.add(label, median(times), min(times))
    return table
