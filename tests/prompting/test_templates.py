from __future__ import annotations

from pathlib import Path

import pytest

from botkit.errors import ConfigError
from botkit.prompting.templates import PromptTemplates
from botkit.testing import write_bot


def render(folder: Path, name: str = "system", **context: object) -> str:
    return PromptTemplates(folder).render(name, context)


def only_problem(err: pytest.ExceptionInfo[ConfigError]) -> str:
    assert len(err.value.problems) == 1
    return str(err.value.problems[0])


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    folder = write_bot(tmp_path, "b", system="line one\n{% if x %}\nno endif\n")
    with pytest.raises(ConfigError) as err:
        PromptTemplates(folder)
    assert only_problem(err).startswith(f"{folder}/system.md.j2:3: ")


def test_an_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    folder = write_bot(tmp_path, "b", system="Hello\n\n{{ bot.nmae }}\n")
    with pytest.raises(ConfigError) as err:
        render(folder, bot={"name": "b"})
    assert only_problem(err).startswith(f"{folder}/system.md.j2:3: ")
    assert "nmae" in only_problem(err)


def test_an_error_in_an_included_template_names_that_file(tmp_path: Path) -> None:
    folder = write_bot(
        tmp_path,
        "b",
        system="Intro\n{% include 'tone.md.j2' %}\n",
        files={"tone.md.j2": "Be kind.\n{{ missing_var }}\n"},
    )
    with pytest.raises(ConfigError) as err:
        render(folder)
    assert only_problem(err).startswith(f"{folder}/tone.md.j2:2: ")


def test_a_missing_include_is_reported(tmp_path: Path) -> None:
    folder = write_bot(tmp_path, "b", system="{% include 'nope.md.j2' %}\n")
    with pytest.raises(ConfigError, match="included template not found: nope.md.j2"):
        render(folder)


def test_a_missing_system_template_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "prompts" / "b"
    folder.mkdir(parents=True)
    with pytest.raises(ConfigError) as err:
        PromptTemplates(folder)
    assert only_problem(err) == f"{folder}/system.md.j2: missing: every bot needs a system prompt"


def test_the_sandbox_blocks_unsafe_attributes(tmp_path: Path) -> None:
    folder = write_bot(tmp_path, "b", system="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(ConfigError, match="unsafe"):
        render(folder)


def test_optional_templates_fall_back_to_defaults(tmp_path: Path) -> None:
    folder = write_bot(tmp_path, "b", files={"welcome.md.j2": "Welcome, {{ user.name }}!"})
    templates = PromptTemplates(folder)
    user = type("U", (), {"name": "Ann"})()
    assert templates.render("welcome", {"user": user}) == "Welcome, Ann!"
    bot = type("B", (), {"name": "b", "handoff": False})()
    assert "/reset" in templates.render("help", {"bot": bot})
    assert "/human" not in templates.render("help", {"bot": bot})
    bot.handoff = True
    assert "/human" in templates.render("help", {"bot": bot})
    assert "support team" in templates.render("fallback", {})


def test_description_is_the_first_comment(tmp_path: Path) -> None:
    folder = write_bot(tmp_path, "b", system="{#\n  Billing helper for Acme\n  more\n#}\nHi")
    assert PromptTemplates(folder).description() == "Billing helper for Acme"


def test_a_run_time_error_names_the_path_once_relative_to_the_home(tmp_path: Path) -> None:
    # With the home as the current directory, the folder is relative: the path used to
    # come out twice (prompts/b/prompts/b/system.md.j2:2).
    write_bot(tmp_path, "b", system="Hi\n{{ user.nickname }}\n")
    templates = PromptTemplates(Path("prompts/b"), home=Path("."))
    with pytest.raises(ConfigError) as err:
        templates.render("system", {"user": {"name": "Ann"}})
    assert only_problem(err) == (
        "prompts/b/system.md.j2:2: "
        "the table has no key 'nickname' (did you mean 'name'?); it has: name"
    )
    absolute = PromptTemplates(tmp_path / "prompts" / "b", home=tmp_path)
    with pytest.raises(ConfigError) as err:
        absolute.render("system", {"user": {"name": "Ann"}})
    assert only_problem(err).startswith("prompts/b/system.md.j2:2: ")


def test_a_misspelt_faq_field_at_run_time_does_not_name_python_classes(tmp_path: Path) -> None:
    from botkit.prompting.faq import FaqSnippet

    folder = write_bot(tmp_path, "b", system="{% for s in faq %}\n{{ s.questoin }}{% endfor %}")
    with pytest.raises(ConfigError) as err:
        render(folder, faq=[FaqSnippet("Q?", "A.", "faq/q.md")])
    message = only_problem(err)
    assert message.endswith(
        "system.md.j2:2: a FAQ snippet has no field 'questoin' (did you mean 'question'?); "
        "its fields: question, answer, source, questions, tags, handoff"
    )
    assert "botkit." not in message


def test_a_failing_optional_template_falls_back_to_the_built_in_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write_bot(tmp_path, "b", files={"fallback.md.j2": "Write to {{ vars.mail }}."})
    templates = PromptTemplates(folder, home=tmp_path)
    context = {"vars": {}, "user": {"name": None}, "bot": {"name": "b"}}
    text = templates.render_or_default("fallback", context)
    assert text.startswith("I'm sorry, I don't have a good answer to that.")
    assert "prompts/b/fallback.md.j2:1: the table has no key 'mail'" in caplog.text
    with pytest.raises(ConfigError):  # the system prompt has no built-in text
        PromptTemplates(write_bot(tmp_path, "c", system="{{ x }}")).render_or_default("system", {})
