"""A bot defined in code (`BotDefinition.from_values`) is the bot its folder would be: the
same definition, the same answers, the same checks and the same errors, named `<NAME>/…`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from botkit import BotDefinition, BotSettings, MemoryStore, Pipeline
from botkit.errors import ConfigError
from botkit.home import BotHome
from botkit.llm.offline import FaqResponder
from botkit.testing import FakeChannel, faq_file, write_bot

SYSTEM = """\
{# Support for {{ vars.company }} #}
You answer for {{ vars.company }}, {{ user.name or "a customer" }} on {{ channel }}.
{% for snippet in faq %}
Q: {{ snippet.question }}
A: {{ snippet.answer }}
{% endfor %}
"""
WELCOME = "Welcome to {{ vars.company }}, {{ user.name }}!"
SETTINGS = {"vars": {"company": "Acme"}, "temperature": 0.3, "faq_top_k": 2, "streaming": False}
TOML = 'temperature = 0.3\nfaq_top_k = 2\nstreaming = false\n\n[vars]\ncompany = "Acme"\n'
HOURS = {
    "question": "When are you open?",
    "questions": ["What are your opening hours?"],
    "tags": ["hours"],
    "answer": "We are open Monday to Friday, 9:00 to 17:00.",
}
REFUND = faq_file("Can I get a refund?", "Within **30 days**.", questions=["money back"])


def in_code(**changes: Any) -> BotDefinition:
    values: dict[str, Any] = {
        "system": SYSTEM,
        "faq": {"hours": HOURS, "refund": REFUND},
        "settings": SETTINGS,
        "templates": {"welcome": WELCOME},
    }
    return BotDefinition.from_values("shop", **(values | changes))


def in_a_folder(home: Path, **changes: Any) -> BotDefinition:
    values: dict[str, Any] = {
        "system": SYSTEM,
        "faq": {
            "hours.md": faq_file(
                HOURS["question"], HOURS["answer"], questions=HOURS["questions"], tags=["hours"]
            ),
            "refund.md": REFUND,
        },
        "settings": TOML,
        "files": {"welcome.md.j2": WELCOME},
    }
    write_bot(home, "shop", **(values | changes))
    return BotHome(home).load_checked("shop")


def test_a_bot_in_code_is_the_bot_its_folder_would_be(tmp_path: Path) -> None:
    code, folder = in_code(), in_a_folder(tmp_path)
    assert (
        (code.name, code.description)
        == (folder.name, folder.description)
        == (
            "shop",
            "Support for {{ vars.company }}",
        )
    )
    assert code.settings == folder.settings
    assert code.faq.snippets == folder.faq.snippets
    assert code.templates.files() == folder.templates.files()
    assert code.folder == Path("<shop>")


async def test_it_answers_as_its_folder_would(tmp_path: Path) -> None:
    replies = []
    for bot in (in_code(), in_a_folder(tmp_path)):
        pipeline = Pipeline(bot=bot, store=MemoryStore(), responder=FaqResponder(bot))
        chat = FakeChannel(pipeline.handle, bot="shop", user_name="Ann")
        said = [await chat.say(text) for text in ("/start", "I want my money back", "Hi?")]
        prompt = pipeline.composer.compose(chat.message("When are you open?"), [])
        replies.append(([(r.text, r.kind, r.faq) for r in said if r], prompt.messages))
    assert replies[0] == replies[1]
    (welcome, refund, fallback), messages = replies[0]
    assert welcome[0] == "Welcome to Acme, Ann!"
    assert refund[2] == ("faq/refund.md",)
    assert fallback[1] == "fallback"
    assert "You answer for Acme, Ann on test." in messages[0]["content"]


def test_settings_may_be_a_bot_settings_and_faq_a_file_s_text() -> None:
    bot = in_code(settings=BotSettings(faq_top_k=1, vars={"company": "A"}), faq={"refund": REFUND})
    assert bot.settings.faq_top_k == 1
    assert [s.question for s in bot.faq.snippets] == ["Can I get a refund?"]


def test_an_included_template_is_found_among_the_templates() -> None:
    bot = in_code(
        system='{% include "partials/tone.md.j2" %}\n\nAnswer briefly.',
        templates={"partials/tone.md.j2": "Be kind to {{ user.name or 'everyone' }}."},
    )
    assert bot.templates.render("system", {"user": {"name": "Ann"}}) == (
        "Be kind to Ann.\nAnswer briefly."
    )


BROKEN: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "a misspelt variable, and a misspelt vars key",
        {"system": "Hi {{ usr.name }}\n{{ vars.compnay }}"},
        {"system": "Hi {{ usr.name }}\n{{ vars.compnay }}"},
    ),
    ("a syntax error", {"system": "{% if %}"}, {"system": "{% if %}"}),
    (
        "a template that fails when rendered",
        {"templates": {"welcome": "{{ 1 // 0 }}"}},
        {"files": {"welcome.md.j2": "{{ 1 // 0 }}"}},
    ),
    (
        "a snippet without an answer, one without front matter",
        {"faq": {"hours": "---\nquestion: When?\n---\n", "refund": "Refunds: yes"}},
        {"faq": {"hours.md": "---\nquestion: When?\n---\n", "refund.md": "Refunds: yes"}},
    ),
    (
        "settings out of range, and unknown",
        {"settings": {"temperature": 3, "colour": "red"}},
        {"settings": "temperature = 3\ncolour = 'red'\n"},
    ),
]


@pytest.mark.parametrize(("code", "folder"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_the_errors_are_the_folder_s_named_after_the_bot(
    tmp_path: Path, code: dict[str, Any], folder: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError) as from_code:
        in_code(**code)
    with pytest.raises(ConfigError) as from_folder:
        in_a_folder(tmp_path, **folder)
    shown = [(str(p.path), p.message) for p in from_code.value.problems]
    expected = [
        (
            str(p.path)
            .replace("prompts/shop", "<shop>")
            .replace("bots/shop.toml", "<shop>/settings"),
            p.message.replace("bots/shop.toml [vars]", "<shop>/settings vars"),
        )
        for p in from_folder.value.problems
    ]
    assert shown == expected
    assert all(str(p.path).startswith("<shop>/") for p in from_code.value.problems)
    # The lines of templates and of snippets given as text are the folder's lines.
    templates = [p.line for p in from_code.value.problems if str(p.path).endswith(".j2")]
    assert templates == [p.line for p in from_folder.value.problems if str(p.path).endswith(".j2")]


def test_a_snippet_s_values_are_checked_with_a_hint() -> None:
    with pytest.raises(ConfigError) as caught:
        in_code(faq={"hours": {"question": "When?", "answer": "9-5", "tag": ["hours"]}})
    assert str(caught.value) == (
        "<shop>/faq/hours.md: unknown key 'tag' (did you mean 'tags'?) "
        "(known: question, questions, tags, handoff, answer)"
    )
    with pytest.raises(ConfigError, match=r"<shop>/faq/hours.md: it has no 'question'"):
        in_code(faq={"hours": {"answer": "9-5"}})
    with pytest.raises(ConfigError, match=r"'handoff' must be true or false"):
        in_code(faq={"hours": {"question": "?", "answer": "!", "handoff": "yes"}})
    with pytest.raises(ConfigError, match=r"expected a file's text or a mapping of values"):
        in_code(faq={"hours": 42})


def test_a_name_that_is_no_bot_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'my shop' is not a bot name"):
        BotDefinition.from_values("my shop", system="Hi")
