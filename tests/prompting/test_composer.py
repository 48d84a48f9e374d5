from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from botkit.home import BotDefinition, BotHome
from botkit.messages import IncomingMessage, Turn
from botkit.prompting.composer import PromptComposer
from botkit.prompting.tokens import count_message_tokens
from botkit.testing import faq_file, write_bot


def message(text: str, **fields: object) -> IncomingMessage:
    defaults: dict[str, object] = dict(
        channel="telegram", bot="b", conversation_id="c", user_id="u1", text=text
    )
    return IncomingMessage(**{**defaults, **fields})  # type: ignore[arg-type]


def history(pairs: int, words: int = 50) -> list[Turn]:
    turns = []
    for i in range(pairs):
        for role in ("user", "assistant"):
            content = f"{role} {i} " + "word " * words
            turns.append(Turn(role, content, time.time(), count_message_tokens(content)))  # type: ignore[arg-type]
    return turns


def load(tmp_path: Path, settings: str = "", **bot: object) -> BotDefinition:
    write_bot(tmp_path, "b", settings=settings, **bot)  # type: ignore[arg-type]
    return BotHome(tmp_path).load_checked("b")


def test_every_documented_context_name_reaches_the_template(tmp_path: Path) -> None:
    system = (
        "{{ bot.name }}|{{ bot.description }}|{{ user.id }}|{{ user.name }}|{{ user.language }}|"
        "{{ channel }}|{{ now.tzinfo is not none }}|{{ vars.company }}|"
        "{% for s in faq %}{{ s.question }}/{{ s.answer }}/{{ s.tags|join(',') }}/{{ s.source }}"
        "{% endfor %}"
    )
    bot = load(
        tmp_path,
        'description = "Helps"\n[vars]\ncompany = "Acme"\n',
        system=system,
        faq={"hours.md": faq_file("When are you open?", "9 to 5.", tags=["hours"])},
    )
    prompt = PromptComposer(bot).compose(
        message("when are you open", user_name="Ann", user_language="de"), []
    )
    assert prompt.messages[0] == {
        "role": "system",
        "content": "b|Helps|u1|Ann|de|telegram|True|Acme|"
        "When are you open?/9 to 5./hours/faq/hours.md",
    }
    assert isinstance(prompt.context["now"], datetime)


def test_messages_are_system_then_history_then_the_question(tmp_path: Path) -> None:
    bot = load(tmp_path)
    turns = history(2, words=1)
    prompt = PromptComposer(bot).compose(message("new question"), turns)
    assert [m["role"] for m in prompt.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert [m["content"] for m in prompt.messages[1:-1]] == [t.content for t in turns]
    assert prompt.messages[-1] == {"role": "user", "content": "new question"}
    assert prompt.history_dropped == 0


def test_history_is_trimmed_oldest_first_to_the_budget(tmp_path: Path) -> None:
    bot = load(tmp_path, "context_tokens = 900\nmax_tokens = 100\n")
    turns = history(10)  # about 90 tokens a turn: far more than fits
    prompt = PromptComposer(bot).compose(message("question"), turns)
    kept = prompt.messages[1:-1]
    assert 0 < len(kept) < len(turns)
    assert [m["content"] for m in kept] == [t.content for t in turns[-len(kept) :]]
    assert kept[0]["role"] == "user"  # never starts with an answer whose question was dropped
    total = sum(count_message_tokens(m["content"]) for m in prompt.messages)
    assert total <= 900 - 100
    assert prompt.history_dropped == len(turns) - len(kept)


def test_a_tighter_budget_keeps_less_history(tmp_path: Path) -> None:
    bot = load(tmp_path, "context_tokens = 4000\nmax_tokens = 100\n")
    composer = PromptComposer(bot)
    full = composer.compose(message("q"), history(10))
    tight = composer.compose(message("q"), history(10), context_tokens=1000)
    assert len(tight.messages) < len(full.messages)


def test_system_and_question_are_never_dropped_even_over_budget(tmp_path: Path) -> None:
    bot = load(tmp_path, "context_tokens = 50\nmax_tokens = 40\n", system="x " * 200)
    long_question = "please " * 300
    prompt = PromptComposer(bot).compose(message(long_question), history(3))
    assert [m["role"] for m in prompt.messages] == ["system", "user"]
    assert prompt.messages[-1]["content"] == long_question


def test_faq_selection_respects_top_k_and_threshold(tmp_path: Path) -> None:
    faq = {
        f"{topic}.md": faq_file(f"How does {topic} work?", f"{topic} works well.")
        for topic in ("shipping", "billing", "returns", "warranty")
    }
    bot = load(tmp_path, "faq_top_k = 2\n", faq=faq)
    prompt = PromptComposer(bot).compose(message("how does billing work"), [])
    assert [s.source for s in prompt.context["faq"]][0] == "faq/billing.md"
    assert len(prompt.context["faq"]) <= 2
    nothing = PromptComposer(bot).compose(message("tell me a joke"), [])
    assert nothing.context["faq"] == [] and nothing.faq == []


@pytest.mark.parametrize("top_k", [0, 1])
def test_the_best_match_is_known_even_when_the_prompt_shows_none(
    tmp_path: Path, top_k: int
) -> None:
    bot = load(
        tmp_path, f"faq_top_k = {top_k}\n", faq={"a.md": faq_file("Refund policy?", "30 days.")}
    )
    prompt = PromptComposer(bot).compose(message("refund policy"), [])
    assert len(prompt.context["faq"]) == top_k
    assert prompt.faq[0].snippet.source == "faq/a.md"


def test_check_renders_with_and_without_language_and_faq(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    write_bot(tmp_path, "no_faq", system="{{ faq[0].answer }}")
    write_bot(tmp_path, "no_lang", system="{{ user.language.upper() }}")
    write_bot(tmp_path, "ok", system="{% if user.language %}{{ user.language.upper() }}{% endif %}")
    assert [str(p) for p in home.check("no_faq")] == [
        "prompts/no_faq/system.md.j2:1: the list has no element 0 (it has 0 items)"
    ]
    assert [p.line for p in home.check("no_lang")] == [1]
    assert home.check("ok") == []
