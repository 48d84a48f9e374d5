"""Feedback on Telegram, end to end against the local Bot API server: 👍/👎 under each
answer, clicks as Telegram sends them (by long polling, and to the webhook with its
secret), one vote per answer, a click on an answer that is gone, and a 👎 that offers a
person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from botkit.feedback import GONE, THANKS
from botkit.home import BotDefinition, BotHome
from botkit.testing import FakeDesk, write_bot
from tests.adapters.telegram_api import (
    GROUP_CHAT,
    PRIVATE_CHAT,
    FakeBotAPI,
    Shown,
    click,
    group_update,
    running,
    text_update,
    user,
)
from tests.adapters.test_telegram_webhook import serving
from tests.conftest import SHOP_FAQ

OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def api() -> Any:
    async with FakeBotAPI() as server:
        yield server


def answer_in(api: FakeBotAPI, chat: int, text: str = OPEN) -> Shown:
    return next(m for m in api.chat(chat) if m.text == text)


async def test_a_vote_is_stored_and_a_second_click_changes_it(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with running(api, shop) as (_, app):
        asked = text_update("When are you open?")
        api.push(asked)
        await api.until(lambda: any(m.buttons for m in api.chat(PRIVATE_CHAT)))
        answer = answer_in(api, PRIVATE_CHAT)
        assert answer.labels() == [["👍", "👎"]]

        down = click(answer, "👎")
        api.push(down)
        await api.until(lambda: down["callback_query"]["id"] in api.answered)
        assert api.answered[down["callback_query"]["id"]] == THANKS
        await api.until(lambda: answer.labels() == [["👍", "👎 ✓"]])
        [vote] = await app.store.feedback(bot="shop")
        assert (vote.score, vote.user, vote.channel) == (-1, "111", "telegram")
        assert vote.message_id == str(asked["message"]["message_id"])
        assert vote.conversation == f"shop/telegram/{PRIVATE_CHAT}"

        up = click(answer, "👍")
        api.push(up)
        await api.until(lambda: answer.labels() == [["👍 ✓", "👎"]])
        assert [v.score for v in await app.store.feedback(bot="shop")] == [1]


async def test_a_click_on_an_answer_that_is_gone_is_answered_and_kept_nowhere(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with running(api, shop) as (_, app):
        api.push(text_update("When are you open?"))
        await api.until(lambda: any(m.buttons for m in api.chat(PRIVATE_CHAT)))
        answer = answer_in(api, PRIVATE_CHAT)
        api.push(text_update("/reset"))
        await api.until(lambda: len(api.chat(PRIVATE_CHAT)) == 2)
        late = click(answer, "👍")
        api.push(late)
        await api.until(lambda: late["callback_query"]["id"] in api.answered)
        assert api.answered[late["callback_query"]["id"]] == GONE
        assert await app.store.feedback() == []
        # A click whose data is not botkit's is answered too, so its button stops spinning.
        odd = click(answer, "👍")
        odd["callback_query"]["data"] = "something else"
        api.push(odd)
        await api.until(lambda: odd["callback_query"]["id"] in api.answered)
        assert api.answered[odd["callback_query"]["id"]] is None


async def test_a_click_reaches_the_webhook_with_its_secret(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop):
        assert (await api.deliver(text_update("When are you open?"))).status_code == 200
        await api.until(lambda: any(m.buttons for m in api.chat(PRIVATE_CHAT)))
        down = click(answer_in(api, PRIVATE_CHAT), "👎")
        assert (await api.deliver(down)).status_code == 200
        await api.until(lambda: down["callback_query"]["id"] in api.answered)
        assert api.answered[down["callback_query"]["id"]] == THANKS


async def test_in_a_group_only_the_person_who_asked_can_rate(
    api: FakeBotAPI, shop: BotDefinition
) -> None:
    async with running(api, shop) as (_, app):
        asked = group_update("@shop_bot When are you open?")
        api.push(asked)
        await api.until(lambda: any(m.buttons for m in api.chat(GROUP_CHAT)))
        answer = answer_in(api, GROUP_CHAT)
        other = click(answer, "👎", sender=user(333, "Eve"), asked=asked["message"])
        api.push(other)
        await api.until(lambda: other["callback_query"]["id"] in api.answered)
        assert "Only the person who asked" in str(api.answered[other["callback_query"]["id"]])
        own = click(answer, "👍", sender=asked["message"]["from"], asked=asked["message"])
        api.push(own)
        await api.until(lambda: own["callback_query"]["id"] in api.answered)
        [vote] = await app.store.feedback()
        assert (vote.user, vote.score) == ("222", 1)
        assert vote.conversation == f"shop/telegram/{GROUP_CHAT}:222"


async def test_no_buttons_when_the_bot_takes_no_feedback(api: FakeBotAPI, tmp_path: Path) -> None:
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings="feedback = false\n")
    bot = BotHome(tmp_path).load_checked("shop")
    async with running(api, bot):
        api.push(text_update("When are you open?"))
        await api.until(lambda: api.chat(PRIVATE_CHAT))
        await api.until(lambda: api.called("sendMessage"))
        assert answer_in(api, PRIVATE_CHAT).buttons is None
        assert not api.called("editMessageReplyMarkup")


async def test_a_thumbs_down_offers_a_person_who_takes_over(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    settings = '[handoff]\ndesk = "slack"\nslack_channel = "C0123456789"\n'
    settings += "offer_on_thumbs_down = true\n"
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings=settings)
    bot = BotHome(tmp_path).load_checked("shop")
    desk = FakeDesk()
    async with running(api, bot, desks={"shop": desk}) as (_, app):
        api.push(text_update("When are you open?"))
        await api.until(lambda: any(m.buttons for m in api.chat(PRIVATE_CHAT)))
        answer = answer_in(api, PRIVATE_CHAT)
        api.push(click(answer, "👎"))
        await api.until(lambda: len(answer.labels()) == 2)
        assert answer.labels()[1] == ["🙋 Talk to a person"]
        api.push(click(answer, "🙋"))
        await api.until(lambda: desk.shown)
        [(handoff, transcript)] = desk.shown
        assert handoff.trigger == "command" and handoff.user_id == "111"
        assert transcript[0].content == "When are you open?"
        await api.until(lambda: len(api.chat(PRIVATE_CHAT)) == 2)
        assert "person" in api.chat(PRIVATE_CHAT)[-1].text
        assert api.chat(PRIVATE_CHAT)[-1].buttons is None  # a notice is no answer to rate
