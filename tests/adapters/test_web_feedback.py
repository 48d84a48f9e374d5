"""Votes and forgetting over the web: the sessions API's feedback route and
`DELETE /v1/users/{id}`, and the chat page's 👎 clicked in headless Chromium."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from botkit.home import BotDefinition, BotHome
from botkit.testing import FakeDesk, write_bot
from tests.adapters.test_web_browser import MISSING, ask, chromium, messages, wait_for
from tests.adapters.web_testing import OTHER_KEY, web_server
from tests.conftest import SHOP_FAQ


async def test_a_vote_through_the_api_and_a_second_that_changes_it(shop: BotDefinition) -> None:
    async with web_server([shop]) as server, server.client() as client:
        session = (await client.post("/v1/sessions", json={"user": "u-7"})).json()["session_id"]
        sent = await client.post(
            f"/v1/sessions/{session}/messages", json={"message": "When are you open?"}
        )
        message_id = sent.json()["message_id"]
        url = f"/v1/sessions/{session}/messages/{message_id}/feedback"
        down = await client.post(url, json={"score": -1, "comment": "Sundays?"})
        assert down.status_code == 200
        assert down.json() == {
            "status": "recorded",
            "offer_person": False,
            "note": down.json()["note"],
        }
        up = await client.post(url, json={"score": 1})
        assert up.status_code == 200
        [vote] = await server.app.store.feedback(bot="shop")
        assert (vote.score, vote.user, vote.comment, vote.message_id) == (
            1,
            "u-7",
            None,
            message_id,
        )

        gone = await client.post(
            f"/v1/sessions/{session}/messages/msg_nope/feedback", json={"score": 1}
        )
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
        bad = await client.post(url, json={"score": 2})
        assert bad.status_code == 422
        async with server.client(OTHER_KEY) as other:  # another key's session is not there
            assert (await other.post(url, json={"score": -1})).status_code == 404
        assert [v.score for v in await server.app.store.feedback()] == [1]


async def test_a_bot_without_feedback_refuses_votes(tmp_path: Path) -> None:
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings="feedback = false\n")
    bot = BotHome(tmp_path).load_checked("shop")
    async with web_server([bot]) as server, server.client() as client:
        session = (await client.post("/v1/sessions", json={})).json()["session_id"]
        sent = await client.post(
            f"/v1/sessions/{session}/messages", json={"message": "When are you open?"}
        )
        url = f"/v1/sessions/{session}/messages/{sent.json()['message_id']}/feedback"
        refused = await client.post(url, json={"score": 1})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "feedback_off"


async def test_deleting_a_user_forgets_them_and_not_a_similar_one(shop: BotDefinition) -> None:
    async with web_server([shop]) as server, server.client() as client:
        sessions = {}
        for user in ("u-1", "u-10"):
            created = await client.post("/v1/sessions", json={"user": user})
            sessions[user] = created.json()["session_id"]
            await client.post(
                f"/v1/sessions/{sessions[user]}/messages", json={"message": "When are you open?"}
            )
        deleted = await client.delete("/v1/users/u-1")
        assert deleted.status_code == 200
        assert deleted.json() == {
            "user": "u-1",
            "conversations": 1,
            "shared": 0,
            "messages": 1,
            "votes": 0,
            "handoffs": 0,
            "usage_rows": 0,
        }
        assert (await client.get(f"/v1/sessions/{sessions['u-1']}")).status_code == 404
        kept = await client.get(f"/v1/sessions/{sessions['u-10']}")
        assert kept.status_code == 200 and len(kept.json()["messages"]) == 2
        again = await client.delete("/v1/users/u-1")
        assert again.json()["conversations"] == 0
        async with server.client(None) as anonymous:
            assert (await anonymous.delete("/v1/users/u-10")).status_code == 401


async def test_the_chat_pages_thumbs_down_offers_a_person(tmp_path: Path) -> None:
    if MISSING:
        pytest.skip(f"needs Debian's chromium and chromium-driver ({', '.join(MISSING)})")
    settings = '[handoff]\ndesk = "webhook"\nwebhook_url = "https://desk.example.com/h"\n'
    write_bot(tmp_path, "shop", faq=SHOP_FAQ, settings=settings + "offer_on_thumbs_down = true\n")
    bot = BotHome(tmp_path).load_checked("shop")
    desk = FakeDesk()
    async with web_server([bot], desks={"shop": desk}) as server:

        def scenario() -> list[tuple[str, str]]:
            from selenium.webdriver.common.by import By

            with chromium() as driver:
                driver.get(server.url + "/")
                wait_for(driver, lambda d: messages(d)[:1], "the welcome")
                ask(driver, "When are you open?")
                down = wait_for(
                    driver,
                    lambda d: d.find_elements(
                        By.CSS_SELECTOR, ".votes .vote[aria-label='Not helpful']"
                    ),
                    "the feedback buttons",
                )[0]
                down.click()
                wait_for(
                    driver, lambda d: down.get_attribute("aria-pressed") == "true", "the vote shown"
                )
                person = wait_for(
                    driver,
                    lambda d: d.find_elements(By.CSS_SELECTOR, ".votes .person"),
                    "the offer",
                )[0]
                person.click()
                wait_for(driver, lambda d: len(messages(d)) >= 5, "the handoff notice")
                return messages(driver)

        shown = await asyncio.to_thread(scenario)
        assert shown[-2] == ("user", "/human")
        [vote] = await server.app.store.feedback(bot="shop")
        assert vote.score == -1
        assert desk.shown and desk.shown[0][0].trigger == "command"
