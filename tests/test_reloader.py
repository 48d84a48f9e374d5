"""Reloading served bots: `botkit serve --reload` and SIGHUP, edits live between messages,
broken edits kept out, answers under way finished with the definition they started with."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from botkit.adapters import ServeOptions
from botkit.app import BotApp
from botkit.handoff import Handoffs
from botkit.home import BotDefinition, BotHome
from botkit.messages import IncomingMessage
from botkit.reloader import Reloader, changed_bots, keep_restart_only
from botkit.serve import serve
from botkit.settings import Settings
from botkit.testing import FakeDesk, faq_file, write_bot
from tests.llm.openai_server import Answer, Fail, OpenAIServer
from tests.loopback import free_port

NEW_HOURS = faq_file(
    "When are you open?",
    "We are open every day, 8:00 to 20:00.",
    questions=["What are your opening hours?"],
    tags=["hours"],
)
KEY = "reload-key"


def message(text: str, user: str = "u-1") -> IncomingMessage:
    return IncomingMessage(channel="web", bot="shop", conversation_id=user, user_id=user, text=text)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for what another task does (a reload, a log line); at most 10 seconds."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the reloader signals nothing else
            await asyncio.sleep(0.01)


# ---- `botkit serve` in its own process ---------------------------------------------------


class ServeProcess:
    """`botkit serve shop --channel web …` as an operator runs it; its log, line by line."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.log: list[str] = []
        self._logged = asyncio.Event()
        self._reader = asyncio.create_task(self._read_log())
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"}
        )

    async def _read_log(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode().rstrip())
            self._logged.set()

    async def logged(self, text: str) -> str:
        """The first log line containing `text`, once it is written."""
        async with asyncio.timeout(15):
            while True:
                for line in self.log:
                    if text in line:
                        return line
                if self.process.returncode is not None or self._reader.done():
                    raise AssertionError(f"serve stopped before logging {text!r}: {self.log}")
                self._logged.clear()
                await self._logged.wait()

    async def ask(self, text: str) -> str:
        session = (await self.client.post("/v1/sessions", json={})).json()["session_id"]
        reply = await self.client.post(f"/v1/sessions/{session}/messages", json={"message": text})
        assert reply.status_code == 200, reply.text
        answer: str = reply.json()["reply"]
        return answer

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            code = await self.process.wait()
        await self._reader
        return code


@asynccontextmanager
async def botkit_serve(home: Path, *options: str) -> AsyncIterator[ServeProcess]:
    port = free_port()
    env = os.environ | {
        "BOTKIT_HOME": str(home),
        "BOTKIT_WEB_API_KEYS": KEY,
        "BOTKIT_STORE_URL": "memory://",
    }
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "botkit", "serve", "shop", "--channel", "web"],
        *["--port", str(port), *options],
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    server = ServeProcess(process, port)
    try:
        for _ in range(300):
            try:
                if (await server.client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                assert process.returncode is None, server.log
                await asyncio.sleep(0.05)
        yield server
    finally:
        await server.client.aclose()
        if process.returncode is None:
            process.kill()
            await process.wait()
        server._reader.cancel()


async def test_serve_reload_takes_edits_keeps_broken_ones_and_outlives_its_folder(
    home: Path,
) -> None:
    faq = home / "prompts" / "shop" / "faq"
    async with botkit_serve(home, "--reload") as server:
        await server.logged("watching prompts/ for changes")
        assert await server.ask("When are you open?") == (
            "We are open Monday to Friday, 9:00 to 17:00."
        )

        (faq / "hours.md").write_text(NEW_HOURS, "utf-8")
        await server.logged("bot shop reloaded (prompts/shop/faq/hours.md changed)")
        assert await server.ask("When are you open?") == "We are open every day, 8:00 to 20:00."

        # Syntax errors, and the answer changed too: none of it is used, each is logged.
        broken = "---\nquestion: [When are you open?\n---\nWe are closed.\n"
        (faq / "hours.md").write_text(broken, "utf-8")
        line = await server.logged("prompts/shop/faq/hours.md:3: invalid front matter")
        assert line.endswith("(bot shop not reloaded: it keeps running as it was)")
        assert await server.ask("When are you open?") == "We are open every day, 8:00 to 20:00."
        (home / "prompts" / "shop" / "system.md.j2").write_text("You answer.\n{% if %}\n")
        line = await server.logged("prompts/shop/system.md.j2:2:")
        assert line.endswith("(bot shop not reloaded: it keeps running as it was)")
        assert await server.ask("When are you open?") == "We are open every day, 8:00 to 20:00."

        shutil.rmtree(home / "prompts" / "shop")
        await server.logged("prompts/shop/: the folder is gone; bot shop keeps running")
        assert await server.ask("When are you open?") == "We are open every day, 8:00 to 20:00."
        assert await server.stop() == 0
    assert not [line for line in server.log if "Traceback" in line], server.log


async def test_sighup_reloads_a_running_server_instead_of_stopping_it(home: Path) -> None:
    async with botkit_serve(home, "-v") as server:
        (home / "prompts" / "shop" / "faq" / "hours.md").write_text(NEW_HOURS, "utf-8")
        server.process.send_signal(signal.SIGHUP)
        await server.logged("bot shop reloaded (SIGHUP)")
        assert await server.ask("When are you open?") == "We are open every day, 8:00 to 20:00."
        assert server.process.returncode is None
        assert await server.stop() == 0
    assert not [line for line in server.log if "watching" in line]  # no --reload: no watcher


# ---- an answer under way ----------------------------------------------------------------


class HeldLLM(OpenAIServer):
    """Holds the first request until `release` is set, then fails it; answers the others."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def _completions(self, request: Request) -> Response:
        if not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, 503)
        return await super()._completions(request)


def write_versioned_bot(home: Path, version: str) -> None:
    write_bot(
        home,
        "shop",
        system="{{ vars.version }} system prompt.",
        files={"fallback.md.j2": f"{version} fallback."},
        settings=f'model = "model-{version}"\n[vars]\nversion = "{version}"\n',
    )


async def test_an_answer_under_way_finishes_with_the_definition_it_started_with(
    tmp_path: Path,
) -> None:
    write_versioned_bot(tmp_path, "old")
    bot = BotHome(tmp_path).load_checked("shop")
    llm = HeldLLM()
    await llm.start()
    settings = Settings(
        home=tmp_path,
        store={"url": "memory://"},
        web={"api_keys": KEY},
        llm={"base_url": llm.base_url, "api_key": "sk-test", "max_retries": 0},
    )
    port = free_port()
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        async with (
            BotApp(settings=settings, bots=[bot]) as app,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client,
        ):
            task = asyncio.create_task(serve(app, ServeOptions(channels=("web",), port=port)))
            for _ in range(200):
                try:
                    await client.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.02)

            async def ask(text: str) -> httpx.Response:
                session = (await client.post("/v1/sessions", json={})).json()["session_id"]
                return await client.post(
                    f"/v1/sessions/{session}/messages", json={"message": text}, timeout=20
                )

            first = asyncio.create_task(ask("Do you sell gift cards?"))
            await asyncio.wait_for(llm.holding.wait(), 10)

            write_versioned_bot(tmp_path, "new")
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: app.pipelines["shop"].bot is not bot)

            second = await ask("Do you sell gift cards?")
            assert second.json()["reply"] == "Hello from the test server."
            [asked] = [r.body for r in llm.received]
            assert asked["model"] == "model-new"
            assert asked["messages"][0]["content"] == "new system prompt."

            # The held request fails: its message is answered offline, by the old definition.
            llm.release.set()
            assert (await first).json()["reply"] == "old fallback."
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(task, 20)
    finally:
        await llm.stop()


# ---- what a reload changes, and what it keeps -------------------------------------------


async def test_model_parameters_vars_faq_settings_and_fallbacks_are_live(tmp_path: Path) -> None:
    faq = {f"q{n}.md": faq_file(f"Question {n} about parcels?", f"Answer {n}.") for n in range(3)}
    system = "{{ vars.company }}{% for s in faq %} [{{ s.question }}]{% endfor %}"
    write_bot(tmp_path, "shop", system=system, faq=faq, settings='[vars]\ncompany = "Acme"\n')
    primary, backup = OpenAIServer(), OpenAIServer()
    await primary.start()
    await backup.start()
    settings = Settings(
        home=tmp_path,
        store={"url": "memory://"},
        llm={"base_url": primary.base_url, "api_key": "sk-test", "max_retries": 0},
    )
    try:
        async with BotApp(settings=settings, bots=[BotHome(tmp_path).load_checked("shop")]) as app:
            pipeline = app.pipelines["shop"]
            await pipeline.handle(message("parcels?"))
            before = primary.received[-1].body
            assert before["model"] == "gpt-4o-mini" and "temperature" not in before
            assert before["messages"][0]["content"].count("[") == 3

            (tmp_path / "bots" / "shop.toml").write_text(
                'model = "gpt-new"\ntemperature = 0.2\nfaq_top_k = 1\n'
                "[params]\ntop_p = 0.5\n"
                '[vars]\ncompany = "Globex"\n'
                f'[[fallbacks]]\nbase_url = "{backup.base_url}"\nmodel = "backup-model"\n',
                "utf-8",
            )
            assert await Reloader(app).reload("shop")
            primary.then(Fail(400))  # not retried: the next endpoint is asked
            backup.then(Answer("from the backup"))
            reply = await pipeline.handle(message("parcels?", user="u-2"))
            assert reply is not None and reply.text == "from the backup"
            after = primary.received[-1].body
            assert after["model"] == "gpt-new"
            assert after["temperature"] == 0.2 and after["top_p"] == 0.5
            assert after["messages"][0]["content"].startswith("Globex [")
            assert after["messages"][0]["content"].count("[") == 1
            assert backup.received[-1].body["model"] == "backup-model"
    finally:
        await primary.stop()
        await backup.stop()


async def test_the_models_list_names_a_reloaded_bots_new_model(tmp_path: Path) -> None:
    from tests.adapters.web_testing import web_server

    write_bot(tmp_path, "shop", settings='model = "gpt-old"\n')
    llm = {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test"}  # never asked
    bots = [BotHome(tmp_path).load_checked("shop")]
    async with web_server(bots, settings={"llm": llm}) as server, server.client() as client:
        before = (await client.get("/v1/models")).json()["models"]
        (tmp_path / "bots" / "shop.toml").write_text('model = "gpt-new"\n', "utf-8")
        assert await Reloader(server.app).reload("shop")
        after = (await client.get("/v1/models")).json()["models"]
    assert [(m["bot"], m["model"]) for m in before] == [("shop", "gpt-old")]
    assert [(m["bot"], m["model"]) for m in after] == [("shop", "gpt-new")]


HANDOFF = """\
[handoff]
desk = "webhook"
webhook_url = "{url}"
timeout = "{timeout}"
after_fallbacks = {after}
"""


async def test_a_new_desk_waits_for_a_restart_but_timeout_and_after_fallbacks_are_live(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    toml = home / "bots" / "shop.toml"
    toml.parent.mkdir()
    toml.write_text(HANDOFF.format(url="https://a.example/hook", timeout="10m", after=3))
    bot = BotHome(home).load_checked("shop")
    settings = Settings(home=home, store={"url": "memory://"})
    async with BotApp(settings=settings, bots=[bot], desks={"shop": FakeDesk()}) as app:
        toml.write_text(HANDOFF.format(url="https://b.example/hook", timeout="1m", after=2))
        with caplog.at_level(logging.WARNING, "botkit.reloader"):
            assert await Reloader(app).reload("shop")
        assert caplog.messages == [
            "bots/shop.toml: [handoff] webhook_url changed: the desk stays as it was until a "
            "restart (after_fallbacks and timeout are applied now)"
        ]
        handoff = app.pipelines["shop"].bot.settings.handoff
        assert handoff is not None and app.bots[0].settings.handoff == handoff
        assert (handoff.webhook_url, handoff.timeout, handoff.after_fallbacks) == (
            "https://a.example/hook",
            60.0,
            2,
        )

        caplog.clear()
        toml.write_text("")
        with caplog.at_level(logging.WARNING, "botkit.reloader"):
            assert await Reloader(app).reload("shop")
        assert caplog.messages == [
            "bots/shop.toml: [handoff] was removed: the bot still hands off until a restart"
        ]
        assert app.pipelines["shop"].bot.settings.handoff == handoff


async def test_a_handoff_table_added_while_serving_waits_for_a_restart(
    home: Path, shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    async with BotApp(settings=Settings(home=home, store={"url": "memory://"}), bots=[shop]) as app:
        (home / "bots").mkdir()
        (home / "bots" / "shop.toml").write_text(
            HANDOFF.format(url="https://a.example/hook", timeout="1m", after=1) + "[vars]\nx = 1\n"
        )
        with caplog.at_level(logging.WARNING, "botkit.reloader"):
            assert await Reloader(app).reload("shop")
        assert caplog.messages == [
            "bots/shop.toml: [handoff] was added: the bot hands off only after a restart"
        ]
        reloaded = app.pipelines["shop"].bot
        assert reloaded.settings.handoff is None and reloaded.settings.vars == {"x": 1}
        reply = await app.pipelines["shop"].handle(message("/human"))
        assert reply is not None and reply.kind == "fallback"


def test_a_new_budget_for_an_api_in_use_waits_for_a_restart(home: Path) -> None:
    toml = home / "bots" / "shop.toml"
    toml.parent.mkdir()
    fallback = '[[fallbacks]]\nbase_url = "{url}"\nmodel = "m"\nrequests_per_minute = {rpm}\n'
    toml.write_text(fallback.format(url="https://b.example/v1", rpm=10))
    old = BotHome(home).load_checked("shop")
    toml.write_text(fallback.format(url="https://b.example/v1", rpm=20))
    new = BotHome(home).load_checked("shop")
    assert keep_restart_only(old, new) == (
        new,
        [
            "[[fallbacks]] https://b.example/v1: new requests_per_minute or tokens_per_minute "
            "take effect after a restart"
        ],
    )
    toml.write_text(fallback.format(url="https://c.example/v1", rpm=20))  # a new API: live
    other = BotHome(home).load_checked("shop")
    assert keep_restart_only(old, other) == (other, [])


async def test_a_reloaded_timeout_times_waiting_handoffs_out(home: Path) -> None:
    toml = home / "bots" / "shop.toml"
    toml.parent.mkdir()
    toml.write_text(HANDOFF.format(url="https://a.example/hook", timeout="10m", after=3))
    bot = BotHome(home).load_checked("shop")
    desks = {"shop": FakeDesk()}
    async with BotApp(
        settings=Settings(store={"url": "memory://"}), bots=[bot], desks=desks
    ) as app:
        now = [1000.0]
        handoffs = Handoffs(store=app.store, bots=[bot], desks=desks, clock=lambda: now[0])
        await handoffs.start(
            message("I need a person"), trigger="command", reason="", address={}, history=[]
        )
        now[0] += 120
        assert await handoffs.expire() == 0  # 10 minutes
        toml.write_text(HANDOFF.format(url="https://a.example/hook", timeout="1m", after=3))
        handoffs.replace_bot(BotHome(home).load_checked("shop"))
        assert await handoffs.expire() == 1

        elsewhere = HANDOFF.format(url="https://b.example/hook", timeout="1m", after=3)
        toml.write_text(elsewhere)
        with pytest.raises(ValueError, match="a new desk needs a restart"):
            handoffs.replace_bot(BotHome(home).load_checked("shop"))


async def test_a_broken_edit_is_logged_one_line_per_problem_and_changes_nothing(
    home: Path, shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    async with BotApp(settings=Settings(home=home, store={"url": "memory://"}), bots=[shop]) as app:
        (home / "bots").mkdir()
        (home / "bots" / "shop.toml").write_text("faq_top_k = 2\ntemperature = 9\ncolour = 1\n")
        (home / "prompts" / "shop" / "system.md.j2").write_text("Hello\n{{ user.nmae }}\n")
        with caplog.at_level(logging.ERROR, "botkit.reloader"):
            assert not await Reloader(app).reload("shop")
        kept = " (bot shop not reloaded: it keeps running as it was)"
        assert sorted(caplog.messages) == [
            "bots/shop.toml:2: temperature: Input should be less than or equal to 2" + kept,
            "bots/shop.toml:3: unknown key 'colour' (known keys: "
            + caplog.messages[1].split("(known keys: ")[1],
        ]
        assert app.pipelines["shop"].bot is shop and app.bots == [shop]

        caplog.clear()
        (home / "bots" / "shop.toml").write_text("faq_top_k = 2\n")
        with caplog.at_level(logging.ERROR, "botkit.reloader"):
            assert not await Reloader(app).reload("shop")
        [line] = caplog.messages
        assert line.startswith("prompts/shop/system.md.j2:2: user has no field 'nmae'")
        assert app.pipelines["shop"].bot is shop


async def test_an_unexpected_failure_is_logged_and_the_reloader_goes_on(
    home: Path,
    shop: BotDefinition,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with BotApp(settings=Settings(home=home, store={"url": "memory://"}), bots=[shop]) as app:
        reloader = Reloader(app)
        running = asyncio.create_task(reloader.run())
        load = BotHome.load_checked

        def fails_once(self: BotHome, name: str) -> BotDefinition:
            monkeypatch.setattr(BotHome, "load_checked", load)
            raise PermissionError("prompts/shop/faq: permission denied")

        monkeypatch.setattr(BotHome, "load_checked", fails_once)
        with caplog.at_level(logging.ERROR, "botkit.reloader"):
            reloader.request()
            await until(lambda: bool(caplog.messages))
        assert caplog.messages == ["bot shop: could not reload (SIGHUP)"]
        reloader.request()
        await until(lambda: app.pipelines["shop"].bot is not shop)
        assert not running.done()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


def test_changed_files_name_the_served_bots_they_belong_to(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    changed = changed_bots(
        home,
        [
            str(tmp_path / "prompts" / "shop" / "faq" / "b.md"),
            str(tmp_path / "prompts" / "shop" / "faq" / "a.md"),
            str(tmp_path / "bots" / "desk.toml"),
            str(tmp_path / "prompts" / "other" / "system.md.j2"),
            str(tmp_path / "prompts" / "README.md"),
            str(tmp_path / "bots" / "notes.txt"),
            str(tmp_path / ".botkit" / "botkit.db"),
        ],
        served=["shop", "desk"],
    )
    assert changed == {"shop": "prompts/shop/faq/a.md", "desk": "bots/desk.toml"}
