"""Feedback on Slack, end to end against the local Web API server: 👍/👎 buttons under
each answer, clicks signed as Slack signs them, one vote per answer, a click on an
answer that is gone, a forged click, and a 👎 that offers a person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from botkit.adapters.slack.feedback import DOWN, HUMAN, UP
from botkit.feedback import GONE
from botkit.home import BotDefinition, BotHome
from botkit.testing import write_bot
from tests.adapters.slack_api import (
    CHANNEL,
    DESK,
    DM,
    USER,
    FakeSlackAPI,
    Posted,
    block_action,
    deliver,
    event_body,
    interact,
    mention,
    message,
    serving,
)
from tests.conftest import SHOP_FAQ

OPEN = "We are open Monday to Friday, 9:00 to 17:00."


@pytest.fixture
async def api() -> Any:
    async with FakeSlackAPI() as server:
        yield server


def the_answer(api: FakeSlackAPI, channel: str = DM) -> Posted | None:
    return next((m for m in api.in_channel(channel) if m.button(UP) is not None), None)


async def answered(api: FakeSlackAPI, channel: str = DM) -> Posted:
    await api.until(lambda: the_answer(api, channel) is not None)
    answer = the_answer(api, channel)
    assert answer is not None
    return answer


def chosen(post: Posted) -> list[str]:
    """The buttons shown as chosen (green)."""
    return [
        element["action_id"]
        for block in post.blocks or ()
        for element in block.get("elements", ())
        if element.get("style") == "primary"
    ]


async def test_a_vote_is_stored_and_a_second_click_changes_it(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        question = message("When are you open?", channel=DM)
        await deliver(bot.url, event_body(question))
        answer = await answered(api)
        assert answer.text == OPEN and OPEN in answer.shown
        value = json.loads(str(answer.button(DOWN)["value"]))  # type: ignore[index]
        assert value == {"c": DM, "m": question["ts"]}

        response = await interact(bot.url, block_action(answer, DOWN, user=USER))
        assert response.status_code == 200
        await api.until(lambda: chosen(answer) == [DOWN])
        [vote] = await bot.app.store.feedback(bot="shop")
        assert (vote.score, vote.user, vote.channel) == (-1, USER, "slack")
        assert (vote.conversation, vote.message_id) == (f"shop/slack/{DM}", question["ts"])
        assert answer.text == OPEN  # the answer itself is unchanged

        await interact(bot.url, block_action(answer, UP, user=USER))
        await api.until(lambda: chosen(answer) == [UP])
        assert [v.score for v in await bot.app.store.feedback()] == [1]


async def test_answers_in_a_channel_thread_carry_buttons_too(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        question = mention("When are you open?")
        await deliver(bot.url, event_body(question))
        answer = await answered(api, CHANNEL)
        assert answer.thread_ts == question["ts"]
        await interact(bot.url, block_action(answer, UP, user=USER))
        await api.until(lambda: chosen(answer) == [UP])
        [vote] = await bot.app.store.feedback()
        assert vote.conversation == f"shop/slack/{CHANNEL}:{question['ts']}"


async def test_a_forged_click_is_refused_and_changes_nothing(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        await deliver(bot.url, event_body(message("When are you open?", channel=DM)))
        answer = await answered(api)
        click = block_action(answer, DOWN, user=USER)
        assert (await interact(bot.url, click, secret="not-the-secret")).status_code == 401
        assert await bot.app.store.feedback() == []


async def test_a_click_on_an_answer_that_is_gone_gets_a_note(
    api: FakeSlackAPI, shop: BotDefinition
) -> None:
    async with serving(api, shop) as bot:
        await deliver(bot.url, event_body(message("When are you open?", channel=DM)))
        answer = await answered(api)
        await deliver(bot.url, event_body(message(" /reset", channel=DM)))
        await api.until(lambda: len(api.in_channel(DM)) == 2)
        response = await interact(bot.url, block_action(answer, UP, user=USER))
        assert response.status_code == 200
        await api.until(lambda: api.ephemerals)
        assert [(n.user, n.text) for n in api.ephemerals] == [(USER, GONE)]
        assert await bot.app.store.feedback() == []


async def test_no_buttons_when_the_bot_takes_no_feedback(api: FakeSlackAPI, tmp_path: Path) -> None:
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings="feedback = false\n")
    async with serving(api, BotHome(tmp_path).load_checked("shop")) as bot:
        await deliver(bot.url, event_body(message("When are you open?", channel=DM)))
        await api.until(lambda: [m.text for m in api.in_channel(DM)] == [OPEN])
        assert api.in_channel(DM)[0].blocks is None


async def test_a_thumbs_down_offers_a_person_at_the_desk(api: FakeSlackAPI, tmp_path: Path) -> None:
    settings = f'[handoff]\ndesk = "slack"\nslack_channel = "{DESK}"\n'
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings=settings + "offer_on_thumbs_down = true\n")
    async with serving(api, BotHome(tmp_path).load_checked("shop")) as bot:
        await deliver(bot.url, event_body(message("When are you open?", channel=DM)))
        answer = await answered(api)
        assert answer.button(HUMAN) is None
        await interact(bot.url, block_action(answer, DOWN, user=USER))
        await api.until(lambda: answer.button(HUMAN) is not None)
        await interact(bot.url, block_action(answer, HUMAN, user=USER))
        await api.until(lambda: api.in_channel(DESK))
        handoff = await bot.app.store.handoff_current(f"shop/slack/{DM}")
        assert handoff is not None and handoff.user_id == USER
        await api.until(lambda: any("person" in m.text for m in api.in_channel(DM)[1:]))
