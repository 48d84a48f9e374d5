"""The webhook desk over real sockets: signed events to a helpdesk's receiver, people
answering through the handoffs API, and a customer on the sessions API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from pydantic import SecretStr

from botkit.app import BotApp
from botkit.desks.webhook import WebhookDesk, sign
from botkit.errors import ConfigError
from botkit.home import BotDefinition, BotHome
from botkit.settings import Settings
from botkit.testing import write_bot
from tests.adapters.web_testing import WebServer, web_server
from tests.conftest import SHOP_FAQ
from tests.desks.webhook_receiver import SECRET, DeskReceiver
from tests.loopback import free_port

HOURS = "We are open Monday to Friday, 9:00 to 17:00."
SETTINGS = {"handoff": {"webhook_secret": SECRET}}


def shop_on_the_desk(home: Path, url: str, *, timeout: str = "10m") -> BotDefinition:
    settings = f'[handoff]\ndesk = "webhook"\nwebhook_url = "{url}"\ntimeout = "{timeout}"\n'
    write_bot(home, "shop", faq=SHOP_FAQ, settings=settings)
    return BotHome(home).load_checked("shop")


async def new_session(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/sessions", json={})
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


async def say(client: httpx.AsyncClient, session_id: str, text: str) -> dict[str, Any]:
    response = await client.post(f"/v1/sessions/{session_id}/messages", json={"message": text})
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


class Live:
    """A session's `/events` stream, read event by event."""

    def __init__(self, events: AsyncIterator[ServerSentEvent]) -> None:
        self._events = events

    async def next(self, within: float = 5) -> tuple[str, dict[str, Any]]:
        event = await asyncio.wait_for(anext(self._events), within)
        data: dict[str, Any] = event.json()
        return event.event, data


@pytest.fixture
async def receiver() -> AsyncIterator[DeskReceiver]:
    async with DeskReceiver() as receiver:
        yield receiver


@pytest.fixture
async def server(tmp_path: Path, receiver: DeskReceiver) -> AsyncIterator[WebServer]:
    async with web_server([shop_on_the_desk(tmp_path, receiver.url)], settings=SETTINGS) as server:
        yield server


async def test_a_person_answers_a_web_customer_through_the_webhook_desk(
    server: WebServer, receiver: DeskReceiver
) -> None:
    async with server.client() as client:
        session_id = await new_session(client)
        assert (await say(client, session_id, "When are you open?"))["reply"] == HOURS
        assert (await say(client, session_id, "/human"))["kind"] == "handoff"

        requested = await receiver.next("handoff.requested")
        handoff = requested["handoff"]
        assert handoff["state"] == "waiting" and handoff["trigger"] == "command"
        assert handoff["channel"] == "web" and handoff["session_id"] == session_id
        assert [m["content"] for m in requested["transcript"]] == [
            "When are you open?",
            HOURS,
            "/human",
        ]
        handoff_id = handoff["handoff_id"]
        listed = (await client.get("/v1/handoffs")).json()["handoffs"]
        assert [h["handoff_id"] for h in listed] == [handoff_id]

        url = f"/v1/sessions/{session_id}/events"
        async with aconnect_sse(client, "GET", url) as source:
            live = Live(source.aiter_sse())
            taken = await client.post(f"/v1/handoffs/{handoff_id}/take", json={"agent": "Anna"})
            assert taken.status_code == 200, taken.text
            assert taken.json()["state"] == "human"
            assert taken.json()["agent"] == {"id": "Anna", "name": "Anna"}
            kind, joined = await live.next()
            assert kind == "notice" and joined["kind"] == "joined" and "Anna" in joined["content"]

            said = await client.post(
                f"/v1/handoffs/{handoff_id}/messages",
                json={"agent": "Anna", "text": "Hi, I'm Anna. Let me check your order."},
            )
            assert said.status_code == 202, said.text
            kind, agent = await live.next()
            assert kind == "agent" and agent.pop("time").endswith("Z")
            assert agent == {
                "role": "agent",
                "content": "Hi, I'm Anna. Let me check your order.",
                "name": "Anna",
                "kind": None,
                "in_reply_to": None,
            }

            relayed = await say(client, session_id, "Thanks! It is order 1234.")
            assert relayed["kind"] == "relayed" and relayed["reply"] == ""
            assert (await live.next())[0] == "user"
            message = await receiver.next("handoff.message")
            assert message["message"]["text"] == "Thanks! It is order 1234."
            assert message["handoff"]["agent"]["name"] == "Anna"

            resolved = await client.post(f"/v1/handoffs/{handoff_id}/resolve", json={})
            assert resolved.status_code == 200 and resolved.json()["outcome"] == "resolved"
            kind, back = await live.next()
            assert kind == "notice" and back["kind"] == "resolved"
            assert "back with the shop assistant" in back["content"]

        assert (await say(client, session_id, "When are you open?"))["reply"] == HOURS
        messages = (await client.get(f"/v1/sessions/{session_id}")).json()["messages"]
        agents = [(m["role"], m["name"]) for m in messages if m["role"] == "agent"]
        assert agents == [("agent", "Anna")]
        assert (await client.get("/v1/handoffs")).json()["handoffs"] == []

    await receiver.next("handoff.resolved")
    assert [e["type"] for e in receiver.events] == [
        "handoff.requested",
        "handoff.taken",
        "handoff.message",
        "handoff.resolved",
    ]
    assert len({e["id"] for e in receiver.events}) == 4 and receiver.refused == 0


async def test_software_hands_a_session_over_once(
    server: WebServer, receiver: DeskReceiver
) -> None:
    async with server.client() as client:
        session_id = await new_session(client)
        await say(client, session_id, "When are you open?")
        url = f"/v1/sessions/{session_id}/handoff"
        async with aconnect_sse(client, "GET", f"/v1/sessions/{session_id}/events") as source:
            live = Live(source.aiter_sse())
            first = await client.post(url, json={"reason": "VIP customer"})
            assert first.status_code == 201, first.text
            assert first.json()["trigger"] == "api" and first.json()["state"] == "waiting"
            kind, notice = await live.next()
            assert kind == "notice" and notice["kind"] == "handoff"
            assert "handing you over to a person" in notice["content"]
        again = await client.post(url)
        assert again.status_code == 200
        assert again.json()["handoff_id"] == first.json()["handoff_id"]
        handoff_id = first.json()["handoff_id"]
        await client.post(f"/v1/handoffs/{handoff_id}/resolve", json={"agent": "Bo"})
        state = (await client.get(f"/v1/sessions/{session_id}")).json()
    await receiver.next("handoff.resolved")
    [requested] = receiver.of("handoff.requested")
    assert requested["handoff"]["reason"] == "VIP customer"
    assert [m["content"] for m in requested["transcript"]] == ["When are you open?", HOURS]
    notices = [m["kind"] for m in state["messages"] if m["role"] == "assistant"][1:]
    assert notices == ["handoff", "resolved"]  # told once


async def test_a_bot_without_a_handoff_table_cannot_be_handed_over(shop: BotDefinition) -> None:
    async with web_server([shop]) as server, server.client() as client:
        session_id = await new_session(client)
        response = await client.post(f"/v1/sessions/{session_id}/handoff", json={})
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "handoff_unavailable" and "bots/shop.toml" in error["message"]
        assert await server.app.store.handoffs_open() == []
        assert (await client.get(f"/v1/sessions/{session_id}")).json()["messages"] == []


async def test_handoffs_api_errors(server: WebServer, receiver: DeskReceiver) -> None:
    async with server.client() as client:
        session_id = await new_session(client)
        handoff_id = (await client.post(f"/v1/sessions/{session_id}/handoff")).json()["handoff_id"]
        base = f"/v1/handoffs/{handoff_id}"

        async def error(path: str, body: object, status: int) -> str:
            response = await client.post(path, json=body)
            assert response.status_code == status, response.text
            code: str = response.json()["error"]["code"]
            return code

        assert await error("/v1/handoffs/h_nope/take", {"agent": "Anna"}, 404) == "not_found"
        assert await error(f"{base}/take", {}, 422) == "invalid_request"
        assert await error(f"{base}/take", {"agent": ""}, 422) == "invalid_request"
        blank = {"agent": "A", "text": " "}
        assert await error(f"{base}/messages", blank, 422) == "invalid_request"
        await client.post(f"{base}/take", json={"agent": "Anna", "agent_id": "u-1"})
        assert await error(f"{base}/take", {"agent": "Bo", "agent_id": "u-2"}, 409) == (
            "handoff_taken"
        )
        again = await client.post(f"{base}/take", json={"agent": "Anna", "agent_id": "u-1"})
        assert again.status_code == 200  # taking it twice is harmless
        assert (await client.post(f"{base}/resolve")).status_code == 200
        assert await error(f"{base}/resolve", {}, 409) == "handoff_closed"
        assert await error(f"{base}/messages", {"agent": "A", "text": "late"}, 409) == (
            "handoff_closed"
        )
        unknown_bot = await client.get("/v1/handoffs", params={"bot": "bakery"})
        assert unknown_bot.status_code == 422
        async with server.client(None) as anonymous:
            assert (await anonymous.get("/v1/handoffs")).status_code == 401
            assert (await anonymous.post(f"{base}/resolve")).status_code == 401
        notices = [
            m["kind"]
            for m in (await client.get(f"/v1/sessions/{session_id}")).json()["messages"]
            if m["role"] == "assistant"
        ]
    assert notices == ["handoff", "joined", "resolved"]  # nothing after the resolve


async def test_a_helpdesk_that_is_down_is_retried_then_logged_and_the_customer_times_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    shop = shop_on_the_desk(tmp_path, down, timeout="1s")
    desk = WebhookDesk(urls={"shop": down}, secret=SecretStr(SECRET), backoff=(0.01, 0.02))
    caplog.set_level(logging.WARNING, logger="botkit.desks.webhook")
    served = web_server([shop], settings=SETTINGS, desks={"shop": desk})
    async with served as server, server.client() as client:
        session_id = await new_session(client)
        async with aconnect_sse(client, "GET", f"/v1/sessions/{session_id}/events") as source:
            live = Live(source.aiter_sse())
            handoff = await say(client, session_id, "/human")  # not held up by the desk
            assert handoff["kind"] == "handoff"
            assert (await live.next())[0] == "user"
            assert (await live.next())[1]["kind"] == "handoff"
            kind, timeout = await live.next(within=10)
            assert kind == "notice" and timeout["kind"] == "timeout"
        assert (await say(client, session_id, "When are you open?"))["reply"] == HOURS
        await desk.aclose()  # lets the last retries finish
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    gave_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert len(retries) == 4  # requested and timeout, each tried three times
    assert [r.levelno for r in gave_up] == [logging.ERROR, logging.ERROR]
    assert "handoff.requested" in gave_up[0].getMessage()
    assert "handoff.timeout" in gave_up[1].getMessage()
    assert SECRET not in caplog.text


async def test_failed_events_are_retried_in_order_with_the_same_id(
    receiver: DeskReceiver, tmp_path: Path
) -> None:
    receiver.answers.extend([500, 503])
    shop = shop_on_the_desk(tmp_path, receiver.url)
    desk = WebhookDesk(urls={"shop": receiver.url}, secret=SecretStr(SECRET), backoff=(0.05,) * 3)
    served = web_server([shop], settings=SETTINGS, desks={"shop": desk})
    async with served as server, server.client() as client:
        session_id = await new_session(client)
        await say(client, session_id, "/human")
        await say(client, session_id, "Are you there?")  # queued behind the failing event
        message = await receiver.next("handoff.message")
    await desk.aclose()  # a desk handed to BotApp is the caller's to close
    assert [e["type"] for e in receiver.events] == ["handoff.requested", "handoff.message"]
    assert message["message"]["text"] == "Are you there?"
    assert receiver.attempts == 4 and receiver.refused == 0


async def test_a_receiver_refusing_the_signature_is_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with DeskReceiver(secret="another-secret") as receiver:
        shop = shop_on_the_desk(tmp_path, receiver.url)
        async with web_server([shop], settings=SETTINGS) as server, server.client() as client:
            await say(client, await new_session(client), "/human")
            for _ in range(200):
                if caplog.records and "gave up" in caplog.records[-1].getMessage():
                    break
                await asyncio.sleep(0.01)
    assert receiver.attempts == receiver.refused == 1
    assert "HTTP 401" in caplog.records[-1].getMessage()


def test_the_signature_is_hmac_sha256_of_the_raw_body() -> None:
    # The example of RFC 4231, test case 2: HMAC-SHA256 of "what do ya want for nothing?".
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert sign(b"what do ya want for nothing?", "Jefe") == f"sha256={expected}"


async def test_the_webhook_desk_needs_a_secret(tmp_path: Path) -> None:
    shop = shop_on_the_desk(tmp_path, "https://helpdesk.example.com/botkit")
    with pytest.raises(ConfigError) as refused:
        async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[shop]):
            pass
    assert "BOTKIT_HANDOFF_WEBHOOK_SECRET" in str(refused.value)
    assert "bots/shop.toml" in str(refused.value)


async def test_a_message_for_an_expired_web_session_is_reported_to_the_desk(
    server: WebServer, receiver: DeskReceiver
) -> None:
    async with server.client() as client:
        session_id = await new_session(client)
        handoff_id = (await client.post(f"/v1/sessions/{session_id}/handoff")).json()["handoff_id"]
        # The session's record runs out (its time to live), the handoff does not.
        await server.app.store.delete_record(f"web:session:{session_id}")
        said = await client.post(
            f"/v1/handoffs/{handoff_id}/messages", json={"agent": "Anna", "text": "Hello?"}
        )
        assert said.status_code == 202
        failed = await receiver.next("handoff.delivery_failed")
    assert failed["failure"] == "the web session was deleted"
    assert failed["handoff"]["handoff_id"] == handoff_id


async def test_deleting_a_session_cancels_its_handoff(
    server: WebServer, receiver: DeskReceiver
) -> None:
    async with server.client() as client:
        session_id = await new_session(client)
        await client.post(f"/v1/sessions/{session_id}/handoff")
        assert (await client.delete(f"/v1/sessions/{session_id}")).status_code == 204
        assert (await client.get("/v1/handoffs")).json()["handoffs"] == []
    resolved = await receiver.next("handoff.resolved")
    assert resolved["handoff"]["outcome"] == "cancelled"


def test_the_secret_comes_from_the_environment_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOTKIT_HANDOFF_WEBHOOK_SECRET", "whsec-from-env")
    settings = Settings.from_environment()
    secret = settings.handoff.webhook_secret
    assert secret is not None and secret.get_secret_value() == "whsec-from-env"
    assert "whsec-from-env" not in repr(settings) and "whsec-from-env" not in str(settings)
