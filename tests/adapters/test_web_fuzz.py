"""schemathesis against the web channel's own `/openapi.json`, on a running server: every
operation with a bounded number of generated requests, valid and not, and every check
it has. Zero server errors, and zero differences between the document and the server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from botkit.home import BotHome
from botkit.testing import faq_file, write_bot
from tests.adapters.web_testing import KEY, web_server

EXAMPLES = 8
"""Generated requests per operation and phase: the whole run stays well under a minute."""
SEED = 20261129
"""A fixed seed: a failure is reproduced by running the test again."""

CONFIG = """
# 413 is how this API refuses input over a size limit (a message, a body): as much a
# rejection of invalid data as a 422.
[checks.negative_data_rejection]
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"
]

# The one rule JSON Schema cannot state: the conversation's last message is the user's
# (it is the question). A request breaking it is valid to the schema, and refused (422).
[[operations]]
include-path = "/v1/chat/completions"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

# An Idempotency-Key used again with another message is refused, 422 as the IETF draft
# on the header says; the fuzzer sends a few keys many times.
[[operations]]
include-path = "/v1/sessions/{session_id}/messages"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""
LIVE = "/events$"
"""The live event streams run until the client leaves (tests/adapters/test_web_events.py
tests them): every request would wait for the fuzzer's timeout."""


async def test_the_document_and_the_server_agree(tmp_path: Path) -> None:
    # With the webhook desk, so the handoffs API is in the document too (its events go
    # to a closed port: the desk retries them in the background).
    handoff = '[handoff]\ndesk = "webhook"\nwebhook_url = "http://127.0.0.1:9/h"\n'
    write_bot(
        tmp_path,
        "shop",
        faq={"hours.md": faq_file("When are you open?", "Nine to five.")},
        settings=f'session_overrides = ["temperature", "stop"]\n{handoff}',
    )
    bot = BotHome(tmp_path).load_checked("shop")
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    settings = {
        "web": {"public_messages_per_minute": 100_000, "max_message_chars": 2000},
        "handoff": {"webhook_secret": "fuzzing-webhook-secret"},
    }
    async with web_server([bot], settings=settings) as server:
        fuzzer = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "schemathesis.cli"),
            *("--config-file", str(tmp_path / "schemathesis.toml"), "run"),
            f"{server.url}/openapi.json",
            *("--header", f"Authorization: Bearer {KEY}"),
            *("--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED)),
            *("--workers", "1", "--no-color", "--suppress-health-check", "all"),
            *("--exclude-path-regex", LIVE),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        output, _ = await asyncio.wait_for(fuzzer.communicate(), 120)
    report = output.decode(errors="replace")
    assert fuzzer.returncode == 0, report[-6000:]
    assert "No issues found" in report or " passed" in report


def test_the_documents_whitespace_is_pythons() -> None:
    """A text of whitespace only is refused by `str.strip()`; the document's pattern for
    text must name the very same characters."""
    from botkit.adapters.web.schemas import WHITESPACE

    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
