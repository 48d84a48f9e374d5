"""Redaction: card numbers (Luhn), e-mail addresses, phone numbers, IBANs and a bot's own
patterns are replaced before a message is stored, sent to the LLM or relayed to people."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.app import BotApp
from botkit.errors import ConfigError
from botkit.home import BotHome
from botkit.messages import IncomingMessage
from botkit.redaction import Redactor, luhn
from botkit.settings import RedactSettings, Settings, load_bot_settings
from botkit.testing import FakeChannel, FakeDesk, write_bot
from tests.conftest import SHOP_FAQ
from tests.llm.openai_server import OpenAIServer

CARD = "4111 1111 1111 1111"  # a test Visa number: the Luhn check passes
NOT_A_CARD = "4111 1111 1111 1112"
EVERY_KIND = RedactSettings(builtin=["card", "email", "phone", "iban"])


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAIServer]:
    server = OpenAIServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def test_luhn() -> None:
    assert luhn("4111111111111111") and luhn("79927398713")
    assert not luhn("4111111111111112") and not luhn("79927398710")


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"my card is {CARD}, expiry 12/25", "my card is [card], expiry 12/25"),
        ("4111-1111-1111-1111", "[card]"),
        ("card 4111111111111111 12/25", "card [card] 12/25"),
        (f"order {NOT_A_CARD} is late", f"order {NOT_A_CARD} is late"),
        ("order 1234567812345678", "order 1234567812345678"),
        ("write to ann.lee+shop@example.co.uk today", "write to [email] today"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [iban] please"),
        ("iban de89370400440532013000.", "iban [iban]."),
        ("DE89 3704 0044 0532 0130 02", "DE89 3704 0044 0532 0130 02"),  # check digits fail
        ("call +49 30 1234567 or (555) 123-4567", "call [phone] or [phone]"),
        ("or 030 1234567, or 555-123-4567", "or [phone], or [phone]"),
        ("on 05.11.2024, at 2024-11-05 10:30", "on 05.11.2024, at 2024-11-05 10:30"),
        ("version 1.2.3, a million: 1 000 000", "version 1.2.3, a million: 1 000 000"),
    ],
)
def test_each_kind_is_found_and_lookalikes_are_kept(text: str, redacted: str) -> None:
    assert Redactor(EVERY_KIND)(text) == redacted


def test_only_the_kinds_asked_for_are_redacted() -> None:
    redact = Redactor(RedactSettings(builtin=["email"]))
    assert redact(f"{CARD} ann@example.com") == f"{CARD} [email]"
    assert not Redactor(RedactSettings())


def test_a_bots_own_patterns(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(
        '[redact]\nbuiltin = ["card"]\n\n[[redact.patterns]]\nname = "order"\n'
        "regex = 'ORD-\\d{6}'\n",
        "utf-8",
    )
    redact = Redactor(load_bot_settings(path).redact)
    assert redact(f"ORD-123456 paid with {CARD}") == "[order] paid with [card]"


@pytest.mark.parametrize(
    ("toml", "line", "message"),
    [
        ("[[redact.patterns]]\nname = 'x'\nregex = '(unclosed'\n", 3, "does not compile"),
        ("[[redact.patterns]]\nname = 'x'\nregex = '\\d*'\n", 3, "matches the empty string"),
        ('description = "x"\nredact = ["card", "ssn"]\n', 2, "redact.builtin.1"),
    ],
)
def test_a_pattern_that_cannot_work_names_the_file_and_line(
    tmp_path: Path, toml: str, line: int, message: str
) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(toml, "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_bot_settings(path)
    [problem] = caught.value.problems
    assert problem.line == line and message in problem.message, problem


async def test_the_llm_and_the_store_see_only_the_placeholder(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings='redact = ["card", "email"]\n')
    bot = BotHome(tmp_path).load_checked("shop")
    settings = Settings(
        home=tmp_path,
        store={"url": "sqlite:///store/botkit.db"},
        llm={"base_url": openai_server.base_url, "api_key": "sk-test"},
    )
    async with BotApp(settings=settings, bots=[bot]) as app:
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop", channel="web")
        await chat.say(f"Charge {CARD} again, not {NOT_A_CARD}; mail ann@example.com")
        turns = await app.store.recent("shop/web/user-1", 10)
    sent = openai_server.received[0].body["messages"][-1]["content"]
    assert sent == f"Charge [card] again, not {NOT_A_CARD}; mail [email]"
    assert turns[0].content == sent
    stored = b"".join(p.read_bytes() for p in (tmp_path / "store").iterdir())
    assert b"[card]" in stored and NOT_A_CARD.encode() in stored
    assert CARD.encode() not in stored and b"ann@example.com" not in stored


async def test_the_inbox_and_the_desk_see_only_the_placeholder(tmp_path: Path) -> None:
    settings_toml = 'redact = ["card"]\n[handoff]\ndesk = "slack"\nslack_channel = "C0123456789"\n'
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings=settings_toml)
    bot = BotHome(tmp_path).load_checked("shop")
    desk = FakeDesk()
    settings = Settings(store={"url": "memory://"})
    async with BotApp(settings=settings, bots=[bot], desks={"shop": desk}) as app:
        pipeline = app.pipelines["shop"]
        message = IncomingMessage(
            channel="web", bot="shop", conversation_id="c", user_id="u", text=f"card {CARD}"
        )
        item = await pipeline.accept(message, address={})
        assert item is not None and item.payload["message"]["text"] == "card [card]"
        chat = FakeChannel(pipeline.handle, bot="shop", channel="web")
        await chat.say("/human")
        await chat.say(f"it is {CARD}")
    assert [text for _, text in desk.relayed] == ["it is [card]"]
