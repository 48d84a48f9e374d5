"""The Slack desk end to end over real HTTP: customers on Telegram or Slack, people in a
Slack channel clicking signed Take and Resolve buttons and replying in threads, against
the local Telegram Bot API and Slack Web API servers. No LLM: the bots answer offline."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from botkit.app import BotApp
from botkit.desks.slack import NO_HANDOFF, NOTES, RESOLVE, TAKE
from botkit.home import BotDefinition, BotHome
from botkit.messages import conversation_key
from botkit.settings import Settings
from botkit.testing import FakeChannel, write_bot
from tests.adapters.slack_api import (
    AGENT,
    APP_TOKEN,
    BOT_USER,
    CHANNEL,
    DESK,
    DM,
    SECRET,
    TOKEN,
    USER,
    FakeSlackAPI,
    Posted,
    Served,
    block_action,
    deliver,
    event_body,
    free_port,
    interact,
    mention,
    message,
    new_ts,
    serving,
)
from tests.adapters.telegram_api import PRIVATE_CHAT, FakeBotAPI, text_update
from tests.adapters.test_slack_cli import environment, until_listening
from tests.conftest import SHOP_FAQ

OPEN = "We are open Monday to Friday, 9:00 to 17:00."
REFUND = "Refunds are possible within 30 days of purchase."
DESK_TABLE = f'[handoff]\ndesk = "slack"\nslack_channel = "{DESK}"\n'
ANN = {"display_name": "Ann", "real_name": "Ann Lee"}


@pytest.fixture
async def slack() -> Any:
    async with FakeSlackAPI() as server:
        yield server


@pytest.fixture
async def telegram() -> Any:
    async with FakeBotAPI() as server:
        yield server


def desk_bot(home: Path, settings: str = DESK_TABLE) -> BotDefinition:
    write_bot(home, "shop", faq=SHOP_FAQ, settings=settings)
    return BotHome(home).load_checked("shop")


@pytest.fixture
def shop_with_desk(home: Path) -> BotDefinition:
    return desk_bot(home)


# --- what the people and the customers see ---------------------------------------------


def _button_value(post: Posted, action_id: str) -> str:
    button = post.button(action_id)
    assert button is not None, f"no {action_id} button"
    return str(button["value"])


def desk_posts(slack: FakeSlackAPI) -> list[Posted]:
    return [m for m in slack.in_channel(DESK) if m.thread_ts is None]


async def the_desk_post(slack: FakeSlackAPI) -> Posted:
    await slack.until(lambda: desk_posts(slack))
    [post] = desk_posts(slack)
    return post


def in_thread(slack: FakeSlackAPI, post: Posted) -> list[str]:
    return [m.text for m in slack.thread(DESK, post.ts)]


def dm(slack: FakeSlackAPI) -> list[str]:
    return [m.text for m in slack.in_channel(DM)]


def chat(telegram: FakeBotAPI) -> list[str]:
    return [m.text for m in telegram.chat(PRIVATE_CHAT)]


def notes(slack: FakeSlackAPI) -> list[tuple[str, str]]:
    return [(note.user, note.text) for note in slack.ephemerals]


def reply_in(post: Posted, text: str, *, user: str = AGENT, **extra: Any) -> dict[str, Any]:
    """A person's reply in the thread of one of the bot's desk posts."""
    return message(
        text, channel=DESK, user=user, thread_ts=post.ts, parent_user_id=BOT_USER, **extra
    )


def from_ann(text: str) -> dict[str, Any]:
    """The customer's DM to the bot (a space first: Slack takes "/…" for a slash command)."""
    return message(text, channel=DM, user_profile=ANN)


async def handed_off_in_a_dm(slack: FakeSlackAPI, bot: Served) -> Posted:
    await deliver(bot.url, event_body(from_ann(" /human")))
    await slack.until(lambda: any("person" in text for text in dm(slack)))
    return await the_desk_post(slack)


# --- end to end ------------------------------------------------------------------------


async def test_a_telegram_customer_is_helped_by_a_person_at_the_slack_desk(
    slack: FakeSlackAPI, telegram: FakeBotAPI, shop_with_desk: BotDefinition
) -> None:
    # Only Telegram is served as a channel: the desk runs the Slack app on its own.
    async with serving(slack, shop_with_desk, channels=("telegram",), telegram=telegram) as bot:
        telegram.push(text_update("When are you open?"))
        await telegram.until(lambda: chat(telegram) == [OPEN])
        telegram.push(text_update("/human"))
        await telegram.until(lambda: len(chat(telegram)) == 2)
        assert "handing you over to a person" in chat(telegram)[1]

        post = await the_desk_post(slack)
        assert "*Ann* on Telegram wants a person" in post.shown
        assert "*Ann:* When are you open?" in post.shown
        assert f"*Bot:* {OPEN}" in post.shown
        assert "*Ann:* /human" in post.shown
        take, resolve = post.button(TAKE), post.button(RESOLVE)
        assert take is not None and resolve is not None
        handoff_id = take["value"]
        assert resolve["value"] == handoff_id

        taken = await interact(bot.url, block_action(post, TAKE))
        assert taken.status_code == 200
        await telegram.until(lambda: "Anna from our team has joined" in chat(telegram)[-1])
        await slack.until(lambda: "Taken by *Anna*" in post.shown)
        assert post.button(TAKE) is None and post.button(RESOLVE) is not None

        answer = reply_in(post, "Hi Ann, I'll look into your order.")
        assert (await deliver(bot.url, event_body(answer))).status_code == 200
        said = "Anna: Hi Ann, I'll look into your order."
        await telegram.until(lambda: chat(telegram)[-1] == said)
        assert telegram.chat(PRIVATE_CHAT)[-1].sent.startswith("<b>Anna:</b>")

        sent_before = len(telegram.called("sendMessage")), len(telegram.called("sendChatAction"))
        telegram.push(text_update("It is order 1234"))
        await slack.until(lambda: "*Ann:* It is order 1234" in in_thread(slack, post))
        await slack.settled()
        sent_after = len(telegram.called("sendMessage")), len(telegram.called("sendChatAction"))
        assert sent_after == sent_before  # no answer from the bot, not even "typing…"

        resolved = await interact(bot.url, block_action(post, RESOLVE))
        assert resolved.status_code == 200
        await telegram.until(lambda: "Anna has finished helping you" in chat(telegram)[-1])
        await slack.until(lambda: "Resolved by *Anna*" in post.shown)
        assert post.button(TAKE) is None and post.button(RESOLVE) is None

        telegram.push(text_update("Can I get a refund?"))
        await telegram.until(lambda: chat(telegram)[-1] == REFUND)
        handoff = await bot.app.store.handoff_get(handoff_id)
        key = conversation_key("shop", "telegram", str(PRIVATE_CHAT))
        turns = [(t.role, t.name, t.content) for t in await bot.app.store.recent(key, 50)]
    assert handoff is not None and handoff.state == "resolved" and handoff.agent_id == AGENT
    assert notes(slack) == []
    assert ("agent", "Anna", "Hi Ann, I'll look into your order.") in turns
    assert ("user", None, "It is order 1234") in turns


async def test_a_slack_customer_and_the_desk_share_one_slack_app(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        assert "*Ann* on Slack wants a person" in post.shown
        # Replying without Take takes it.
        await deliver(bot.url, event_body(reply_in(post, "Happy to help, Ann.")))
        await slack.until(lambda: dm(slack)[-1] == "*Anna:* Happy to help, Ann.")
        assert "Anna from our team has joined" in dm(slack)[-2]
        await slack.until(lambda: "Taken by *Anna*" in post.shown)
        handoff_id = _button_value(post, RESOLVE)
        late = block_action(post, TAKE, user="UBOB00001", value=handoff_id)
        assert (await interact(bot.url, late)).status_code == 200
        await slack.until(
            lambda: notes(slack) == [("UBOB00001", "Anna has already taken this conversation.")]
        )

        before = len(dm(slack))
        await deliver(bot.url, event_body(from_ann("Where is my parcel?")))
        await slack.until(lambda: "*Ann:* Where is my parcel?" in in_thread(slack, post))
        await slack.settled()
        assert len(dm(slack)) == before  # no :hourglass_flowing_sand:, no bot answer

        await deliver(bot.url, event_body(reply_in(post, "resolve")))
        await slack.until(lambda: "Anna has finished helping you" in dm(slack)[-1])
        await slack.until(lambda: "Resolved by *Anna*" in post.shown)

        await deliver(bot.url, event_body(from_ann("When are you open?")))
        await slack.until(lambda: dm(slack)[-1] == OPEN)
    assert "resolve" not in " ".join(dm(slack))  # the word was an order, not a message


async def test_a_customer_in_a_channel_thread_is_answered_in_that_thread(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        asked = mention("/human", user_profile=ANN)
        await deliver(bot.url, event_body(asked))
        post = await the_desk_post(slack)
        await deliver(bot.url, event_body(reply_in(post, "Hello from support.")))
        thread = lambda: [m.text for m in slack.thread(CHANNEL, asked["ts"])]  # noqa: E731
        await slack.until(lambda: thread()[-1:] == ["*Anna:* Hello from support."])
        # The customer's follow-up in their thread (no mention) reaches the desk.
        await deliver(bot.url, event_body(message("Thanks!", thread_ts=asked["ts"])))
        await slack.until(lambda: "*Ann:* Thanks!" in in_thread(slack, post))
    assert "handing you over to a person" in thread()[0]


async def test_a_mention_of_the_bot_in_a_desk_thread_is_for_the_customer(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        thread_before = in_thread(slack, post)
        text = f"<@{BOT_USER}> tell Ann her parcel left today"
        event = reply_in(post, text)
        twin = reply_in(post, text, ts=event["ts"], kind="app_mention")
        for body in (event_body(event), event_body(twin), event_body(event)):
            assert (await deliver(bot.url, body)).status_code == 200
        await slack.until(lambda: "parcel left today" in dm(slack)[-1])
        await slack.settled()
    assert dm(slack)[-1] == "*Anna:* tell Ann her parcel left today"
    assert sum("parcel left today" in text for text in dm(slack)) == 1
    # The bot did not answer in the thread: only the desk's own note that Anna took it.
    assert in_thread(slack, post) == [*thread_before, "Taken by *Anna*."]


async def test_desk_actions_arrive_over_socket_mode(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk, app_token=APP_TOKEN, signing_secret=None):
        await slack.push(event_body(from_ann(" /human")))
        post = await the_desk_post(slack)
        envelope = await slack.push(block_action(post, TAKE), kind="interactive")
        await slack.until(lambda: envelope in {ack["envelope_id"] for ack in slack.acks})
        await slack.until(lambda: "Taken by *Anna*" in post.shown)
        await slack.until(lambda: "Anna from our team has joined" in dm(slack)[-1])
        await slack.push(event_body(reply_in(post, "On it.")))
        await slack.until(lambda: dm(slack)[-1] == "*Anna:* On it.")
        await slack.push(block_action(post, RESOLVE), kind="interactive")
        await slack.until(lambda: "Resolved by *Anna*" in post.shown)
        await slack.until(lambda: "Anna has finished helping you" in dm(slack)[-1])


# --- changes the people did not make ---------------------------------------------------


async def test_a_handoff_nobody_takes_times_out_on_the_desk_too(
    slack: FakeSlackAPI, home: Path
) -> None:
    bot_definition = desk_bot(home, DESK_TABLE + 'timeout = "1s"\n')
    async with serving(slack, bot_definition) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        await slack.until(lambda: "Nobody took it in time" in post.shown)
        await slack.until(lambda: "nobody from our team is free" in dm(slack)[-1])
    assert post.button(TAKE) is None and post.button(RESOLVE) is None
    assert "Nobody took it in time" in in_thread(slack, post)[-1]


async def test_a_customer_starting_over_closes_the_desk_post(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        await deliver(bot.url, event_body(from_ann(" /reset")))
        await slack.until(lambda: "The customer started over" in post.shown)
    assert post.button(TAKE) is None and post.button(RESOLVE) is None


# --- bad input -------------------------------------------------------------------------


async def test_a_reply_under_the_bots_post_that_is_no_handoff_gets_a_note(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        stray = Posted(DESK, new_ts(), None, "An old handoff from another deployment")
        slack.messages.append(stray)
        await deliver(bot.url, event_body(reply_in(stray, "Is anyone there?")))
        await slack.until(lambda: slack.ephemerals)
        await slack.settled()
    assert notes(slack) == [(AGENT, NO_HANDOFF)]
    assert slack.ephemerals[0].thread_ts == stray.ts
    assert slack.called("chat.postMessage") == []


async def test_employees_threads_in_the_desk_channel_are_left_alone(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        chatter = message("Lunch?", channel=DESK, user=USER)
        reply = message("Sure", channel=DESK, user=AGENT, thread_ts=chatter["ts"])
        reply["parent_user_id"] = USER
        for event in (chatter, reply):
            assert (await deliver(bot.url, event_body(event))).status_code == 200
        # The same app still answers an employee who asks it something there.
        question = mention("When are you open?", channel=DESK, user=AGENT)
        await deliver(bot.url, event_body(question))
        await slack.until(lambda: [m.text for m in slack.thread(DESK, question["ts"])] == [OPEN])
        await slack.settled()
    assert slack.ephemerals == []
    assert len(slack.called("chat.postMessage")) == 1


async def test_a_bots_message_in_a_desk_thread_reaches_nobody(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        before = dm(slack)
        other_bot = reply_in(post, "Automated: ticket #77 opened", bot_id="B0THER")
        own = reply_in(post, "*Ann:* echo", user=BOT_USER, bot_id="BBOT0001")
        for event in (other_bot, own):
            assert (await deliver(bot.url, event_body(event))).status_code == 200
        await slack.settled()
        current = await bot.app.store.handoff_current(conversation_key("shop", "slack", DM))
    assert dm(slack) == before
    assert slack.ephemerals == []
    assert current is not None and current.state == "waiting"


async def test_a_second_resolve_a_late_take_and_a_late_reply_reach_nobody(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        handoff_id = _button_value(post, RESOLVE)
        await interact(bot.url, block_action(post, RESOLVE))
        await slack.until(lambda: "Resolved by *Anna*" in post.shown)
        await slack.until(lambda: "has finished helping you" in dm(slack)[-1])
        told = dm(slack)
        for action in (RESOLVE, TAKE):  # as a client that still shows the buttons sends them
            click = block_action(post, action, user="UBOB00001", value=handoff_id)
            assert (await interact(bot.url, click)).status_code == 200
        await deliver(bot.url, event_body(reply_in(post, "Anything else?")))
        await slack.until(lambda: len(slack.ephemerals) == 3)
        await slack.settled()
        handoff = await bot.app.store.handoff_get(handoff_id)
    assert dm(slack) == told  # the customer was told once, and nothing more
    closed = NOTES["closed"]
    assert sorted(notes(slack)) == [(AGENT, closed), ("UBOB00001", closed), ("UBOB00001", closed)]
    assert handoff is not None and handoff.outcome == "resolved" and handoff.agent_id is None


async def test_an_unknown_handoff_in_a_button_changes_nothing(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        response = await interact(bot.url, block_action(post, TAKE, value="h_not_a_handoff"))
        assert response.status_code == 200
        await slack.until(lambda: slack.ephemerals)
        await slack.settled()
    assert notes(slack) == [(AGENT, NOTES["unknown"])]
    assert "Waiting for a person" in post.shown


@pytest.mark.parametrize("forgery", ["secret", "stale"])
async def test_a_forged_or_stale_button_click_is_refused(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition, forgery: str
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        payload = block_action(post, TAKE)
        if forgery == "secret":
            response = await interact(bot.url, payload, secret="not-the-secret")
        else:
            response = await interact(bot.url, payload, timestamp=int(time.time()) - 6 * 60)
        await slack.settled()
        handoff = await bot.app.store.handoff_by_desk(f"{DESK}:{post.ts}")
    assert response.status_code == 401
    assert handoff is not None and handoff.state == "waiting" and handoff.agent_id is None
    assert "Waiting for a person" in post.shown
    assert not any("joined" in text for text in dm(slack))


def _to_ann(params: dict[str, Any]) -> bool:
    return bool(params["channel"] == DM)


async def test_a_delivery_slack_refuses_is_shown_in_the_thread(
    slack: FakeSlackAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk) as bot:
        post = await handed_off_in_a_dm(slack, bot)
        slack.fail("chat.postMessage", "channel_not_found", times=10, when=_to_ann)
        await deliver(bot.url, event_body(reply_in(post, "Are you still there?")))
        await slack.until(lambda: any(":warning:" in text for text in in_thread(slack, post)))
    warning = next(text for text in in_thread(slack, post) if ":warning:" in text)
    assert warning == ":warning: This did not reach Ann: Slack refused: channel_not_found"


async def test_a_telegram_customer_who_blocked_the_bot_is_reported_in_the_thread(
    slack: FakeSlackAPI, telegram: FakeBotAPI, shop_with_desk: BotDefinition
) -> None:
    async with serving(slack, shop_with_desk, channels=("telegram",), telegram=telegram) as bot:
        telegram.push(text_update("/human"))
        post = await the_desk_post(slack)
        telegram.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", times=10)
        await deliver(bot.url, event_body(reply_in(post, "Hello?")))
        await slack.until(lambda: any("blocked" in text for text in in_thread(slack, post)))
        await slack.settled()
    blocked = [text for text in in_thread(slack, post) if "blocked" in text]
    assert blocked[0] == (
        ":warning: This did not reach Ann: Telegram refused: Forbidden: bot was blocked by the user"
    )
    assert len(blocked) == 2  # "Anna joined" and her message: each tried once, not forever


# --- many workers ----------------------------------------------------------------------


class Workers:
    """Two `botkit serve shop --channel telegram` processes on one SQLite file, with the
    Slack desk; what they logged once stopped."""

    def __init__(self, slack: FakeSlackAPI, telegram: FakeBotAPI, home: Path, **env: str):
        self._env = environment(
            home,
            TELEGRAM_BOT_TOKEN=telegram.token,
            BOTKIT_TELEGRAM_BASE_URL=telegram.base_url,
            SLACK_BOT_TOKEN=TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            BOTKIT_SLACK_API_URL=slack.base_url,
            BOTKIT_STORE_URL=f"sqlite:///{home / 'shared.db'}",
            **env,
        )
        self._telegram = telegram
        self.ports = [free_port(), free_port()]
        self.processes: list[asyncio.subprocess.Process] = []
        self.logs: list[str] = []

    @property
    def events_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/slack/events" for port in self.ports]

    async def __aenter__(self) -> Workers:
        command = [sys.executable, "-m", "botkit", "serve", "shop", "--channel", "telegram"]
        for port in self.ports:
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    *command, "--port", str(port), env=self._env, stderr=asyncio.subprocess.PIPE
                )
            )
        telegram = self._telegram
        try:
            for port, process in zip(self.ports, self.processes, strict=True):
                await until_listening(f"http://127.0.0.1:{port}/healthz", process)
            # Both polling: each asked who it is, and for updates (the first, at least).
            await telegram.until(
                lambda: (
                    len(telegram.called("getMe")) >= 2 and len(telegram.called("getUpdates")) >= 2
                ),
                within=60,
            )
        except BaseException as err:
            await self.__aexit__()
            raise AssertionError(f"the workers did not start: {self.logs}") from err
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        outputs = [await asyncio.wait_for(p.communicate(), 30) for p in self.processes]
        self.logs = [stderr.decode() for _, stderr in outputs]


async def test_two_workers_share_the_desk_and_each_message_arrives_once(
    slack: FakeSlackAPI, telegram: FakeBotAPI, home: Path
) -> None:
    desk_bot(home)
    async with Workers(slack, telegram, home) as workers:
        first, second = workers.events_urls
        telegram.push(text_update("/human"))
        post = await the_desk_post(slack)
        assert (await interact(first, block_action(post, TAKE))).status_code == 200
        await telegram.until(lambda: any("joined" in text for text in chat(telegram)), within=30)
        hello = reply_in(post, "Hello from the desk.")
        assert (await deliver(second, event_body(hello))).status_code == 200
        await telegram.until(lambda: "Anna: Hello from the desk." in chat(telegram), within=30)
        telegram.push(text_update("Thanks!"))
        await slack.until(lambda: "*Ann:* Thanks!" in in_thread(slack, post), within=30)
        await slack.settled(1.5)  # a second worker looks in the inbox every second
    assert [p.returncode for p in workers.processes] == [0, 0], workers.logs
    assert not any("Traceback" in log for log in workers.logs), workers.logs
    texts = chat(telegram)
    assert sum("handing you over" in text for text in texts) == 1
    assert sum("joined" in text for text in texts) == 1
    assert texts.count("Anna: Hello from the desk.") == 1
    assert in_thread(slack, post).count("*Ann:* Thanks!") == 1
    assert len(desk_posts(slack)) == 1


async def test_a_reply_whose_worker_died_is_passed_on_by_the_other(
    slack: FakeSlackAPI, telegram: FakeBotAPI, home: Path
) -> None:
    desk_bot(home)
    async with Workers(slack, telegram, home, BOTKIT_STORE_LEASE="1") as workers:
        first, second = workers.events_urls
        telegram.push(text_update("/human"))
        post = await the_desk_post(slack)
        assert (await interact(first, block_action(post, TAKE))).status_code == 200
        await telegram.until(lambda: any("joined" in text for text in chat(telegram)), within=30)
        looked_up = len(slack.called("users.info"))
        stalled = slack.stall("users.info")  # the second worker asks who wrote it, and hangs
        hello = reply_in(post, "Hello from the desk.")
        assert (await deliver(second, event_body(hello))).status_code == 200
        await slack.until(lambda: len(slack.called("users.info")) > looked_up)
        workers.processes[1].kill()  # acknowledged, not passed on
        await telegram.until(lambda: "Anna: Hello from the desk." in chat(telegram), within=30)
        stalled.set()
        await slack.settled(1.5)
    assert chat(telegram).count("Anna: Hello from the desk.") == 1
    assert not any("Traceback" in log for log in workers.logs), workers.logs


# --- settings --------------------------------------------------------------------------


async def test_without_slack_settings_a_handoff_is_one_clear_log_line(
    shop_with_desk: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    # `botkit chat` with a bot whose desk is Slack, and no Slack credentials at hand.
    async with BotApp(settings=Settings(store={"url": "memory://"}), bots=[shop_with_desk]) as app:
        chat = FakeChannel(app.pipelines["shop"].handle, bot="shop")
        reply = await chat.say("/human")
        handoffs = await app.store.handoffs_open()
    assert reply is not None and reply.kind == "handoff"  # the customer is still told
    assert len(handoffs) == 1 and handoffs[0].desk_ref is None  # and it times out later
    assert "the Slack desk needs SLACK_BOT_TOKEN" in caplog.text
    assert "Traceback" not in caplog.text


async def test_serving_a_slack_desk_needs_slack_settings(home: Path) -> None:
    desk_bot(home)
    env = environment(home, TELEGRAM_BOT_TOKEN="123:abc")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "serve", "shop", "--channel", "telegram",
        "--port", str(free_port()), env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "SLACK_BOT_TOKEN: the Slack desk needs SLACK_BOT_TOKEN" in stderr.decode()
