"""The Telegram channel: normalization and group rules, then the bot over real HTTP against a
local Bot API server, by long polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from telegram import Update
from telegram.ext import ExtBot

from botkit.adapters import ServeOptions
from botkit.adapters.telegram import (
    BotIdentity,
    TelegramChannel,
    Timing,
    bot_tokens,
    build,
    to_incoming,
    webhook_urls,
)
from botkit.app import BotApp
from botkit.errors import ConfigError
from botkit.home import BotDefinition, BotHome
from botkit.llm.base import Completion
from botkit.settings import Settings, TelegramSettings
from botkit.testing import write_bot
from tests.adapters.telegram_api import (
    BOT_ID,
    BOT_USERNAME,
    CANNOT_PARSE,
    GROUP_CHAT,
    NOT_MODIFIED,
    PRIVATE_CHAT,
    FakeBotAPI,
    ScriptedResponder,
    Shown,
    bot_message,
    group_update,
    message_update,
    photo_update,
    running,
    sticker_update,
    telegram_settings,
    text_update,
    user,
)

ME = BotIdentity(BOT_ID, BOT_USERNAME)
OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    # python-telegram-bot warns when it builds a RetryAfter unless told to use timedeltas.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def api() -> Any:
    async with FakeBotAPI() as server:
        yield server


def incoming(update: dict[str, Any]) -> Any:
    return to_incoming(Update.de_json(update, None), bot="shop", me=ME)


# --- normalization and group rules ------------------------------------------------------


def test_a_private_message_becomes_an_incoming_message() -> None:
    update = text_update("When are you open?", sender={**user(111, "Ann"), "last_name": "Lee"})
    message = incoming(update)
    assert message.channel == "telegram" and message.bot == "shop"
    assert message.conversation_id == str(PRIVATE_CHAT) and message.user_id == "111"
    assert message.text == "When are you open?"
    assert (message.user_name, message.user_language) == ("Ann Lee", "en")
    assert message.message_id == str(update["message"]["message_id"])
    assert message.timestamp.tzinfo is not None
    assert abs((message.timestamp - datetime.now(UTC)).total_seconds()) < 60


def test_in_a_group_each_user_has_their_own_conversation() -> None:
    first = incoming(group_update(f"@{BOT_USERNAME} hi", user_id=1))
    second = incoming(group_update(f"@{BOT_USERNAME} hi", user_id=2))
    assert first.conversation_id == f"{GROUP_CHAT}:1"
    assert second.conversation_id == f"{GROUP_CHAT}:2"
    assert first.conversation_key != second.conversation_key


@pytest.mark.parametrize(
    ("text", "answered"),
    [
        ("When are you open?", False),
        (f"@{BOT_USERNAME} when are you open?", True),
        (f"When are you open, @{BOT_USERNAME.upper()}?", True),
        ("@other_bot when are you open?", False),
        (f"@{BOT_USERNAME}_fan is a different user", False),
        ("/help", True),
        (f"/reset@{BOT_USERNAME}", True),
        ("/help@other_bot", False),
        ("/weather", False),
        (f"/weather@{BOT_USERNAME}", True),
        (f"/weather @{BOT_USERNAME}", True),
    ],
)
def test_a_group_message_is_answered_only_when_addressed(text: str, answered: bool) -> None:
    assert (incoming(group_update(text)) is not None) is answered


def test_the_mention_is_taken_out_of_the_question() -> None:
    assert incoming(group_update(f"@{BOT_USERNAME} when are you open?")).text == (
        "when are you open?"
    )
    assert incoming(group_update(f"@{BOT_USERNAME}")).text == f"@{BOT_USERNAME}"


def test_a_reply_to_the_bot_is_addressed_and_a_reply_to_someone_else_is_not() -> None:
    bots = bot_message(Shown(GROUP_CHAT, 5, "Hello", "Hello", None, None))
    assert incoming(group_update("and on Sundays?", reply_to=bots)) is not None
    someone = {**bots, "from": user(333, "Cy")}
    assert incoming(group_update("and on Sundays?", reply_to=someone)) is None


def test_a_text_mention_of_the_bot_is_addressed() -> None:
    update = group_update("Shop, when are you open?")
    update["message"]["entities"] = [
        {"type": "text_mention", "offset": 0, "length": 4, "user": {**user(BOT_ID), "is_bot": True}}
    ]
    assert incoming(update) is not None


@pytest.mark.parametrize(
    "update",
    [
        message_update(kind="edited_message", text="When are you open?"),
        message_update(kind="channel_post", text="News!"),
        message_update(new_chat_members=[user(5)]),
        message_update(left_chat_member=user(5)),
        message_update(pinned_message=bot_message(Shown(PRIVATE_CHAT, 5, "Hi", "Hi", None, None))),
        message_update(text="hi", sender={**user(9), "is_bot": True}),
        {"update_id": 99, "callback_query": {"id": "1", "from": user(), "chat_instance": "x"}},
    ],
    ids=["edited", "channel post", "joined", "left", "pinned", "from a bot", "callback"],
)
def test_updates_that_are_not_questions_are_ignored(update: dict[str, Any]) -> None:
    assert incoming(update) is None


def test_content_the_bot_cannot_read_has_empty_text() -> None:
    assert incoming(photo_update()).text == ""
    assert incoming(sticker_update()).text == ""
    assert incoming(photo_update(chat_id=GROUP_CHAT)) is None  # a group's photos are not for us
    captioned = photo_update(chat_id=GROUP_CHAT, caption=f"@{BOT_USERNAME} what is this?")
    captioned["message"]["caption_entities"] = [{"type": "mention", "offset": 0, "length": 9}]
    assert incoming(captioned).text == ""


# --- settings ---------------------------------------------------------------------------


def test_one_bot_uses_telegram_bot_token() -> None:
    settings = TelegramSettings(bot_token=SecretStr("1:a"))
    assert bot_tokens(settings, ["shop"]) == {"shop": "1:a"}


def test_several_bots_need_a_token_each() -> None:
    settings = TelegramSettings(bot_token=SecretStr("1:a"), bot_tokens={"shop": SecretStr("2:b")})
    with pytest.raises(ConfigError) as caught:
        bot_tokens(settings, ["shop", "nimbus"])
    (problem,) = caught.value.problems
    assert problem.path == "TELEGRAM_BOT_TOKEN" and "'nimbus'" in problem.message
    assert "BOTKIT_TELEGRAM_BOT_TOKENS" in problem.message
    settings.bot_tokens["nimbus"] = SecretStr("3:c")
    assert bot_tokens(settings, ["shop", "nimbus"]) == {"shop": "2:b", "nimbus": "3:c"}


def test_two_bots_cannot_share_a_token() -> None:
    settings = TelegramSettings(bot_tokens={"a": SecretStr("1:a"), "b": SecretStr("1:a")})
    with pytest.raises(ConfigError, match="same token"):
        bot_tokens(settings, ["a", "b"])


async def test_a_bot_without_a_token_fails_at_build_time(shop: BotDefinition) -> None:
    async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[shop]) as app:
        with pytest.raises(ConfigError) as caught:
            build(app, ServeOptions(channels=("telegram",)))
    assert caught.value.problems[0].path == "TELEGRAM_BOT_TOKEN"
    assert "set TELEGRAM_BOT_TOKEN" in str(caught.value)


def test_webhook_urls_get_one_path_per_bot() -> None:
    assert webhook_urls("https://bots.example.com/tg/", ["shop", "nimbus"]) == {
        "shop": "https://bots.example.com/tg/shop",
        "nimbus": "https://bots.example.com/tg/nimbus",
    }
    assert webhook_urls("https://bots.example.com", ["shop"]) == {
        "shop": "https://bots.example.com/telegram/shop"
    }
    with pytest.raises(ConfigError, match="--webhook"):
        webhook_urls("bots.example.com/tg", ["shop"])


async def test_a_webhook_secret_telegram_would_refuse_is_a_config_error(
    shop: BotDefinition, api: FakeBotAPI
) -> None:
    settings = telegram_settings(api, webhook_secret="not allowed!")
    async with BotApp(settings=settings, bots=[shop]) as app:
        with pytest.raises(ConfigError, match="BOTKIT_TELEGRAM_WEBHOOK_SECRET"):
            TelegramChannel(app, webhook_url="https://bots.example.com/tg")


async def test_a_token_telegram_rejects_is_a_config_error(shop: BotDefinition) -> None:
    async with FakeBotAPI(token="1:right") as api:
        settings = telegram_settings(api)
        settings.telegram.bot_token = SecretStr("1:wrong")
        async with BotApp(settings=settings, bots=[shop]) as app:
            channel = TelegramChannel(app, timing=Timing(poll_timeout=1))
            try:
                with pytest.raises(ConfigError) as caught:
                    await channel.run()
            finally:
                await channel.aclose()
    assert "rejected the token of bot 'shop'" in str(caught.value)
    assert "1:wrong" not in str(caught.value)


# --- the bot over HTTP, long polling ----------------------------------------------------


async def test_a_private_question_is_answered_from_the_faq(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with running(api, shop):
        api.push(text_update("When are you open?"))
        await api.until(lambda: api.chat(PRIVATE_CHAT))
    (answer,) = api.chat(PRIVATE_CHAT)
    assert answer.text == OPEN and answer.quote is None
    assert [c["command"] for c in api.commands] == ["start", "help", "reset"]
    assert api.called("deleteWebhook")  # polling makes sure no webhook is set
    assert api.called("getUpdates")[0].params["allowed_updates"] == ["message", "callback_query"]


async def test_a_group_answers_only_when_mentioned_and_quotes_the_question(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with running(api, shop):
        # Handled in order: by the time the mention is answered, the first was passed over.
        api.push(group_update("When are you open?"))
        mention = group_update(f"@{BOT_USERNAME} when are you open?")
        api.push(mention)
        await api.until(lambda: api.chat(GROUP_CHAT))
    (answer,) = api.chat(GROUP_CHAT)
    assert answer.text == OPEN
    assert answer.quote == mention["message"]["message_id"]


async def test_a_reply_to_the_bot_in_a_group_is_answered(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with running(api, shop):
        api.push(group_update(f"@{BOT_USERNAME} when are you open?"))
        await api.until(lambda: api.chat(GROUP_CHAT))
        api.push(
            group_update("How long does shipping take?", reply_to=bot_message(api.messages[0]))
        )
        await api.until(lambda: len(api.chat(GROUP_CHAT)) == 2)
    assert api.chat(GROUP_CHAT)[1].text == "Parcels arrive in 2 to 4 working days."


async def test_commands_start_help_and_reset(api: FakeBotAPI, shop: BotDefinition) -> None:
    responder = ScriptedResponder(lambda question: f"You said: {question}")
    async with running(api, shop, responder=responder) as (_, app):
        for text in ("/start", "remember me", "/reset", "/help"):
            api.push(text_update(text))
            count = len(api.messages) + 1
            await api.until(lambda count=count: len(api.messages) == count)
        key = f"shop/telegram/{PRIVATE_CHAT}"
        assert await app.store.recent(key, 10) == []  # /reset forgot "remember me"
    welcome, echo, reset, help_ = (m.text for m in api.chat(PRIVATE_CHAT))
    assert echo == "You said: remember me"
    assert "forgotten our conversation" in reset
    assert "/reset" in help_ and welcome
    assert responder.questions == ["remember me"]  # commands never reach the model


async def test_a_photo_gets_a_polite_text_only_reply(api: FakeBotAPI, shop: BotDefinition) -> None:
    async with running(api, shop):
        api.push(photo_update())
        await api.until(lambda: api.chat(PRIVATE_CHAT))
    assert api.chat(PRIVATE_CHAT)[0].text.startswith("Sorry, I can only read text messages.")


async def test_the_unsupported_reply_comes_from_the_bot_s_template(
    api: FakeBotAPI, home: Path
) -> None:
    write_bot(home, "shop", files={"unsupported.md.j2": "Text only, please, {{ user.name }}."})
    async with running(api, BotHome(home).load_checked("shop")):
        api.push(photo_update())
        await api.until(lambda: api.chat(PRIVATE_CHAT))
    assert api.chat(PRIVATE_CHAT)[0].text == "Text only, please, Ann."


def long_answer() -> str:
    paragraphs = [(f"**Step {i}.** " + "Do this, then that. " * 25).strip() for i in range(20)]
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_ten_thousand_character_reply_is_split(
    api: FakeBotAPI, home: Path, streaming: bool
) -> None:
    write_bot(home, "shop", settings=f"streaming = {str(streaming).lower()}")
    bot = BotHome(home).load_checked("shop")
    answer = long_answer()
    assert len(answer) > 10_000
    async with running(api, bot, responder=ScriptedResponder(answer, chunk=700, pause=0.01)):
        api.push(text_update("How do I do it?"))
        await api.until(lambda: "Step 19." in "".join(m.text for m in api.messages))
    shown = api.chat(PRIVATE_CHAT)
    assert len(shown) == 3
    assert all(len(m.text) <= 4096 and m.parse_mode == "HTML" for m in shown)
    assert " ".join(m.text for m in shown).split() == answer.replace("**", "").split()


async def test_formatting_telegram_refuses_is_sent_again_as_plain_text(
    api: FakeBotAPI, home: Path
) -> None:
    write_bot(home, "shop", settings="streaming = false")
    bot = BotHome(home).load_checked("shop")
    api.fail("sendMessage", 400, CANNOT_PARSE, when=lambda p: p.get("parse_mode") == "HTML")
    async with running(api, bot, responder=ScriptedResponder("Use **Settings → Export**.")):
        api.push(text_update("How do I export?"))
        await api.until(lambda: api.chat(PRIVATE_CHAT))
    (answer,) = api.chat(PRIVATE_CHAT)
    assert answer.text == "Use Settings → Export." and answer.parse_mode is None
    assert [c.status for c in api.called("sendMessage")] == [400, 200]


async def test_a_429_retry_after_is_honoured(api: FakeBotAPI, shop: BotDefinition) -> None:
    api.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    async with running(api, shop):
        api.push(text_update("When are you open?"))
        await api.until(lambda: api.chat(PRIVATE_CHAT))
    refused, sent = api.called("sendMessage")
    assert (refused.status, sent.status) == (429, 200)
    assert sent.at - refused.at >= 1.0  # waited as told, then delivered
    assert [m.text for m in api.chat(PRIVATE_CHAT)] == [OPEN]


async def test_a_network_error_on_the_final_text_is_tried_again(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    api.fail("sendMessage", 502, "Bad Gateway")
    async with running(api, shop):
        api.push(text_update("When are you open?"))
        await api.until(lambda: api.chat(PRIVATE_CHAT))
    assert [c.status for c in api.called("sendMessage")] == [502, 200]
    assert [m.text for m in api.chat(PRIVATE_CHAT)] == [OPEN]


async def test_streaming_edits_one_message_throttled_and_ends_complete(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    answer = " ".join(f"word{i}" for i in range(120))
    responder = ScriptedResponder(answer, chunk=6, pause=0.005)
    interval = 0.1
    timing = Timing(edit_interval=interval, typing_interval=0.05, poll_timeout=2)
    async with running(api, shop, responder=responder, timing=timing):
        api.push(text_update("Tell me everything"))
        await api.until(lambda: api.messages and api.messages[0].text == answer)
        await asyncio.sleep(0.2)  # nothing more may arrive after the final text
    (message,) = api.chat(PRIVATE_CHAT)
    assert message.text == answer
    deltas = -(-len(answer) // 6)
    assert 2 <= len(message.edits) < deltas / 3  # edited as it grew, far less than per delta
    sent_at = api.called("sendMessage")[0].at
    gaps = [b - a for a, b in zip([sent_at, *message.edits], message.edits, strict=False)]
    assert min(gaps[:-1]) >= interval * 0.9  # the final edit may follow at once
    assert all(c.status == 200 for c in api.called("editMessageText"))


async def test_streaming_survives_not_modified_and_flood_control(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    api.fail("editMessageText", 400, NOT_MODIFIED)
    api.fail("editMessageText", 429, "Too Many Requests: retry after 1", retry_after=1)
    async with running(api, shop, responder=ScriptedResponder(answer, chunk=20, pause=0.05)):
        api.push(text_update("Tell me everything"))
        await api.until(lambda: api.messages and api.messages[0].text == answer)
    statuses = [c.status for c in api.called("editMessageText")]
    assert 400 in statuses and 429 in statuses and statuses[-1] == 200
    assert [m.text for m in api.chat(PRIVATE_CHAT)] == [answer]


async def test_typing_is_shown_until_the_reply_is_sent(api: FakeBotAPI, home: Path) -> None:
    write_bot(home, "shop", settings="streaming = false")
    bot = BotHome(home).load_checked("shop")
    async with running(api, bot, responder=ScriptedResponder("Done.", pause=0.3)):
        api.push(text_update("Take your time"))
        await api.until(lambda: api.chat(PRIVATE_CHAT))
        await asyncio.sleep(0.2)
    typing = api.called("sendChatAction")
    sent = api.called("sendMessage")[0]
    assert len(typing) >= 3 and all(c.params["action"] == "typing" for c in typing)
    assert all(c.at < sent.at for c in typing)  # stopped once the reply went out


async def test_a_slow_chat_does_not_hold_up_another(api: FakeBotAPI, shop: BotDefinition) -> None:
    gate = asyncio.Event()
    slow = ScriptedResponder(lambda q: "slow answer" if q == "slow" else OPEN, gates={"slow": gate})
    async with running(api, shop, responder=slow):
        api.push(text_update("slow", chat_id=1, sender=user(1)))
        await api.until(lambda: slow.questions == ["slow"])
        api.push(text_update("When are you open?", chat_id=2, sender=user(2)))
        await api.until(lambda: api.chat(2))
        assert api.chat(1) == []
        gate.set()
        await api.until(lambda: api.chat(1))
    assert api.chat(1)[0].text == "slow answer"


async def test_a_chat_whose_replies_fail_does_not_stop_the_bot(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    blocked = "Forbidden: bot was blocked by the user"
    api.fail("sendMessage", 403, blocked, times=5, when=lambda p: p["chat_id"] == 1)
    async with running(api, shop):
        api.push(text_update("When are you open?", chat_id=1, sender=user(1)))
        await api.until(lambda: api.called("sendMessage"))
        api.push(text_update("When are you open?", chat_id=2, sender=user(2)))
        await api.until(lambda: api.chat(2))
    assert api.chat(1) == [] and api.chat(2)[0].text == OPEN


async def test_one_conversation_s_messages_are_answered_in_order(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    responder = ScriptedResponder(lambda q: f"answer to {q}", pause=0.05)
    async with running(api, shop, responder=responder):
        for number in range(4):
            api.push(text_update(f"question {number}"))
        await api.until(lambda: len(api.chat(PRIVATE_CHAT)) == 4)
    assert [m.text for m in api.chat(PRIVATE_CHAT)] == [f"answer to question {n}" for n in range(4)]


async def test_stopping_lets_a_reply_under_way_finish(api: FakeBotAPI, shop: BotDefinition) -> None:
    responder = ScriptedResponder("Finished after all.", pause=0.3)
    async with running(api, shop, responder=responder) as (channel, _):
        api.push(text_update("Take your time"))
        await api.until(lambda: responder.questions)
        await channel.aclose()  # what serve() does on SIGTERM
        assert [m.text for m in api.chat(PRIVATE_CHAT)] == ["Finished after all."]


async def test_stopping_waits_for_replies_only_so_long(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    responder = ScriptedResponder("never", gate=asyncio.Event())
    timing = Timing(shutdown_timeout=0.2, poll_timeout=2)
    async with running(api, shop, responder=responder, timing=timing) as (channel, _):
        api.push(text_update("Take your time"))
        await api.until(lambda: responder.questions)
        await asyncio.wait_for(channel.aclose(), 5)
    assert api.chat(PRIVATE_CHAT) == []


# --- message drafts (sendMessageDraft) in private chats -------------------------------

DRAFTS = hasattr(ExtBot, "send_message_draft")
"""python-telegram-bot 22.6 and later have drafts; older ones stream by edits."""


async def test_a_private_answer_is_streamed_as_a_draft_then_sent_once(shop: BotDefinition) -> None:
    answer = " ".join(f"word{i}" for i in range(120))
    responder = ScriptedResponder(answer, chunk=6, pause=0.005)
    async with FakeBotAPI(drafts=True) as api, running(api, shop, responder=responder):
        api.push(text_update("Tell me everything"))
        await api.until(lambda: api.chat(PRIVATE_CHAT))
        await asyncio.sleep(0.2)  # nothing more may arrive after the final text
    (message,) = api.chat(PRIVATE_CHAT)
    assert message.text == answer and message.parse_mode == "HTML"
    if not DRAFTS:  # this python-telegram-bot cannot send drafts: edits, as before
        assert message.edits and not api.called("sendMessageDraft")
        return
    assert message.edits == [] and not api.called("editMessageText")
    drafts = api.drafts
    assert len(drafts) >= 2 and len({d.draft_id for d in drafts}) == 1
    assert all(d.chat_id == PRIVATE_CHAT and answer.startswith(d.text) for d in drafts)
    assert [len(d.text) for d in drafts] == sorted(len(d.text) for d in drafts)  # it grew
    assert drafts[-1].at < api.called("sendMessage")[0].at  # the message came after


class HeldResponder:
    """Streams `first`, then waits for `release` before the rest of `answer`."""

    def __init__(self, answer: str, first: int) -> None:
        self.answer, self.first = answer, first
        self.release = asyncio.Event()

    async def complete(self, prompt: Any) -> Completion:
        return Completion(text=self.answer)

    async def stream(self, prompt: Any) -> AsyncIterator[str | Completion]:
        yield self.answer[: self.first]
        await self.release.wait()
        yield self.answer[self.first :]
        yield Completion(text=self.answer)


async def test_a_long_private_answer_sends_each_full_message_and_drafts_the_rest(
    shop: BotDefinition,
) -> None:
    answer = long_answer()
    responder = HeldResponder(answer, first=5_000)  # one full message, and more
    async with FakeBotAPI(drafts=True) as api, running(api, shop, responder=responder):
        api.push(text_update("How do I do it?"))
        await api.until(lambda: api.chat(PRIVATE_CHAT) and (api.drafts or not DRAFTS))
        if DRAFTS:  # the first message is sent; what follows it is a draft
            (first,) = api.chat(PRIVATE_CHAT)
            await api.until(lambda: any(d.text.startswith("Step ") for d in api.drafts[-1:]))
            assert first.text.startswith("Step 0.") and not answer.startswith(api.drafts[-1].text)
        responder.release.set()
        await api.until(lambda: "Step 19." in "".join(m.text for m in api.messages))
    shown = api.chat(PRIVATE_CHAT)
    assert len(shown) == 3
    assert " ".join(m.text for m in shown).split() == answer.replace("**", "").split()
    if DRAFTS:
        assert not api.called("editMessageText")  # nothing sent was edited


async def test_a_group_answer_is_streamed_by_edits_not_drafts(shop: BotDefinition) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    responder = ScriptedResponder(answer, chunk=6, pause=0.01)
    async with FakeBotAPI(drafts=True) as api, running(api, shop, responder=responder):
        api.push(group_update(f"@{BOT_USERNAME} tell me everything"))
        await api.until(lambda: api.chat(GROUP_CHAT) and api.messages[0].text == answer)
    assert api.chat(GROUP_CHAT)[0].edits and not api.called("sendMessageDraft")


async def test_drafts_telegram_refuses_fall_back_to_edits_and_are_not_tried_again(
    shop: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    async with FakeBotAPI(drafts=True) as api:
        api.fail("sendMessageDraft", 400, "Bad Request: TEXTDRAFT_NOT_ALLOWED")
        responder = ScriptedResponder(lambda q: f"{answer} ({q})", chunk=6, pause=0.01)
        async with running(api, shop, responder=responder):
            api.push(text_update("first"))
            await api.until(lambda: api.chat(PRIVATE_CHAT) and "(first)" in api.messages[0].text)
            api.push(text_update("second"))
            await api.until(lambda: len(api.chat(PRIVATE_CHAT)) == 2)
            await api.until(lambda: "(second)" in api.messages[1].text)
    first, second = api.chat(PRIVATE_CHAT)
    assert first.text == f"{answer} (first)" and second.text == f"{answer} (second)"
    assert first.edits and second.edits  # both streamed by edits
    assert api.drafts == []
    if DRAFTS:
        assert len(api.called("sendMessageDraft")) == 1  # refused once, then left alone
        assert "refused a message draft (textdraft_not_allowed)" in caplog.text.lower()


async def test_a_bot_api_server_without_drafts_gets_edits(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    responder = ScriptedResponder(lambda q: f"{answer} ({q})", chunk=6, pause=0.01)
    async with running(api, shop, responder=responder):
        for question in ("first", "second"):
            api.push(text_update(question))
            await api.until(lambda q=question: any(f"({q})" in m.text for m in api.messages))
    assert all(m.edits for m in api.chat(PRIVATE_CHAT))
    assert [c.status for c in api.called("sendMessageDraft")] == ([404] if DRAFTS else [])
