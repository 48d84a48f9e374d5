"""`botkit chat`: answers appear as they are written; Markdown is rendered on a terminal."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import select
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from botkit.adapters.console import ConsoleAdapter, in_one_piece
from botkit.home import BotDefinition
from botkit.messages import IncomingMessage, Reply
from tests.llm.openai_server import OpenAIServer, Streamed

BOTKIT = str(Path(sys.executable).parent / "botkit")
BOLD = "\x1b[1m"


class Terminal(io.StringIO):
    """What rich sees as a terminal: it then renders Markdown with ANSI styles, live."""

    def isatty(self) -> bool:
        return True


class HeldAnswer:
    """Answers "**Part one.**", then waits for the test to let the rest through."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.asked: list[str] = []

    async def __call__(self, message: IncomingMessage) -> AsyncIterator[str]:
        self.asked.append(message.text)
        yield "**Part one.**"
        await self.release.wait()
        yield " Part two:\n\n- a list item\n"


async def until(condition: Callable[[], bool]) -> None:
    """Wait for something the adapter does on its own time (no deadline is asserted)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("it never happened")


async def run_console(stdout: io.StringIO, answer: HeldAnswer, *, markdown: bool) -> None:
    adapter = ConsoleAdapter(
        answer=answer,
        bot="shop",
        user_id="ann",
        stdin=io.StringIO("Tell me\n"),
        stdout=stdout,
        interactive=False,
        markdown=markdown,
    )
    task = asyncio.create_task(adapter.run())
    await until(lambda: "Part one." in stdout.getvalue())
    assert "Part two" not in stdout.getvalue()  # shown before the rest was even written
    answer.release.set()
    await task
    assert answer.asked == ["Tell me"]


async def test_piped_output_is_plain_text_streamed_then_one_blank_line() -> None:
    stdout = io.StringIO()
    await run_console(stdout, HeldAnswer(), markdown=False)
    assert stdout.getvalue() == "**Part one.** Part two:\n\n- a list item\n\n\n"


async def test_a_terminal_gets_markdown_rendered_as_it_is_written() -> None:
    stdout = Terminal()
    await run_console(stdout, HeldAnswer(), markdown=True)
    out = stdout.getvalue()
    assert f"{BOLD}Part one." in out
    assert "**" not in out
    assert "•" in out.split("Part two")[-1]  # the list is rendered as a list


async def test_an_empty_message_writes_nothing_and_whole_answers_work_too() -> None:
    async def handler(message: IncomingMessage) -> Reply | None:
        text = message.text.strip()
        return Reply(text=f"You said {text}.", conversation_id="c") if text else None

    stdout = io.StringIO()
    adapter = ConsoleAdapter(
        answer=in_one_piece(handler),
        bot="shop",
        user_id="ann",
        stdin=io.StringIO("hi\n\nbye\n"),
        stdout=stdout,
        interactive=False,
    )
    await adapter.run()
    assert stdout.getvalue() == "You said hi.\n\nYou said bye.\n\n"


def read_pty(master: int, until: bytes, seen: bytearray) -> bool:
    """Read the terminal until `until` appears in what arrived after `seen`'s start."""
    start = len(seen)
    for _ in range(600):  # at most a minute of 0.1 s waits
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:  # the child closed the terminal
                return until in seen[start:]
        if until in seen[start:]:
            return True
    return False


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
async def test_chat_on_a_real_terminal_streams_the_models_markdown(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = OpenAIServer()
    await server.start()
    server.then(Streamed(["Open **File", " → Export**:\n\n", "1. Choose PDF\n", "2. Save\n"]))
    master, child = pty.openpty()
    env = {
        **os.environ,
        "BOTKIT_LLM_BASE_URL": server.base_url,
        "BOTKIT_STORE_URL": "memory://",
        "TERM": "xterm",
    }
    process = await asyncio.create_subprocess_exec(
        *[BOTKIT, "chat", "shop", "--user", "ann"],
        stdin=child,
        stdout=child,
        stderr=child,
        cwd=home,
        env=env,
    )
    os.close(child)
    seen = bytearray()
    try:
        prompt = "you › ".encode()
        assert await asyncio.to_thread(read_pty, master, prompt, seen), bytes(seen)
        os.write(master, b"How do I export?\n")
        assert await asyncio.to_thread(read_pty, master, prompt, seen), bytes(seen)
        os.write(master, b"\x04")  # Ctrl-D
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(master)
        await server.stop()
    answer = bytes(seen).decode().split("How do I export?", 1)[1]
    assert f"{BOLD}shop ›" in answer
    assert f"{BOLD}File → Export" in answer and "**" not in answer
    assert " 1 \x1b[0mChoose PDF" in answer and " 2 \x1b[0mSave" in answer  # a numbered list
    assert server.received[0].body["stream"] is True


async def test_piped_chat_never_imports_rich(home: Path) -> None:
    script = (
        "import sys\n"
        "from botkit.cli import main\n"
        "code = main(['chat', 'shop'])\n"
        "print('rich imported' if 'rich' in sys.modules else 'no rich', code)\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=home,
        env={**os.environ, "BOTKIT_STORE_URL": "memory://"},
    )
    out, _ = await asyncio.wait_for(process.communicate(b"When are you open?\n"), 60)
    assert out.decode() == "We are open Monday to Friday, 9:00 to 17:00.\n\nno rich 0\n"


async def test_human_without_a_desk_says_so_at_the_terminal(shop: BotDefinition) -> None:
    from botkit.adapters.console import answers
    from botkit.llm.offline import FaqResponder
    from botkit.pipeline import Pipeline
    from botkit.stores import MemoryStore

    pipeline = Pipeline(bot=shop, store=MemoryStore(), responder=FaqResponder(shop))
    stdout = io.StringIO()
    adapter = ConsoleAdapter(
        answer=answers(pipeline),
        bot="shop",
        user_id="ann",
        stdin=io.StringIO("/human\n"),
        stdout=stdout,
        interactive=False,
    )
    await adapter.run()
    out = stdout.getvalue()
    assert "support team" in out  # the fallback text a customer would get
    assert "no [handoff] table in bots/shop.toml" in out
    assert out.endswith("\n\n")


async def test_a_message_to_the_person_handling_it_is_noted(tmp_path: Path) -> None:
    from botkit.adapters.console import RELAYED, answers
    from botkit.app import BotApp
    from botkit.home import BotHome
    from botkit.settings import Settings
    from botkit.testing import FakeDesk, write_bot

    write_bot(
        tmp_path,
        "shop",
        settings='[handoff]\ndesk = "webhook"\nwebhook_url = "https://desk.example.com/"\n',
    )
    bot = BotHome(tmp_path).load_checked("shop")
    async with BotApp(
        settings=Settings(store={"url": "memory://"}), bots=[bot], desks={"shop": FakeDesk()}
    ) as app:
        stdout = io.StringIO()
        adapter = ConsoleAdapter(
            answer=answers(app.pipelines["shop"]),
            bot="shop",
            user_id="ann",
            stdin=io.StringIO("/human\nare you there?\n"),
            stdout=stdout,
            interactive=False,
        )
        await adapter.run()
    first, second = stdout.getvalue().split("\n\n")[:2], stdout.getvalue()
    assert "person" in first[0]
    assert second.endswith(f"{RELAYED}\n\n")
