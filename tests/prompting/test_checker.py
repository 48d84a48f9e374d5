"""`botkit check`'s static analysis: every undefined name in every branch of every template."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from botkit.home import BotHome
from botkit.prompting.faq import FaqSnippet
from botkit.testing import faq_file, write_bot

FAQ = {"hours.md": faq_file("When are you open?", "9 to 5.", questions=["opening hours"])}
SETTINGS = '[vars]\ncompany = "Acme"\nsupport_email = "help@acme.example"\n'


def check(
    home: Path,
    system: str,
    *,
    files: dict[str, str] | None = None,
    settings: str | None = SETTINGS,
) -> list[str]:
    write_bot(home, "shop", system=system, faq=FAQ, files=files, settings=settings)
    return [str(p) for p in BotHome(home).check("shop")]


def test_an_undefined_name_inside_an_if_branch_is_found(tmp_path: Path) -> None:
    # Rendering with sample users never takes this branch: the old check said "ok".
    system = 'Hello.\n{% if user.id == "bob" %}\n{{ typo_here }}\n{% endif %}\n'
    assert check(tmp_path, system) == ["prompts/shop/system.md.j2:3: 'typo_here' is undefined"]


def test_every_branch_is_walked_elif_and_else_included(tmp_path: Path) -> None:
    system = (
        "{% if channel == 'web' %}{{ a1 }}\n"
        "{% elif channel == 'slack' %}{{ a2 }}\n"
        "{% else %}{{ a3 }}{% endif %}\n"
        "{{ 'x' if user.name else a4 }}\n"
        "{% for s in faq %}{% else %}{{ a5 }}{% endfor %}\n"
    )
    problems = check(tmp_path, system)
    assert [p.split(": ", 1)[1] for p in problems] == [f"'a{i}' is undefined" for i in range(1, 6)]
    assert [p.split(":")[1] for p in problems] == ["1", "2", "3", "4", "5"]


def test_a_misspelt_name_gets_a_did_you_mean_hint(tmp_path: Path) -> None:
    system = "{% set greeting = 'Hi' %}\n{{ greting }} {{ chanel }}\n"
    assert check(tmp_path, system) == [
        "prompts/shop/system.md.j2:2: 'greting' is undefined (did you mean 'greeting'?)",
        "prompts/shop/system.md.j2:2: 'chanel' is undefined (did you mean 'channel'?)",
    ]


def test_an_undefined_var_lists_the_toml_keys(tmp_path: Path) -> None:
    assert check(tmp_path, "We are {{ vars.compnay }}.\n") == [
        "prompts/shop/system.md.j2:1: vars has no key 'compnay' (did you mean 'company'?); "
        "bots/shop.toml [vars] has: company, support_email"
    ]
    assert check(tmp_path / "other", "{{ vars['x'] }}\n", settings=None) == [
        "prompts/shop/system.md.j2:1: vars has no key 'x'; bots/shop.toml [vars] is empty"
    ]


def test_nested_vars_tables_are_checked_too(tmp_path: Path) -> None:
    settings = '[vars.links]\ndocs = "https://docs"\n'
    assert check(tmp_path, "{{ vars.links.docs }} {{ vars.links.doc }}", settings=settings) == [
        "prompts/shop/system.md.j2:1: vars.links has no key 'doc' (did you mean 'docs'?); "
        "bots/shop.toml [vars] has: docs"
    ]


def test_a_misspelt_faq_field_names_the_field_not_the_class(tmp_path: Path) -> None:
    system = "{% for snippet in faq %}\n{{ snippet.questoin }}\n{% endfor %}\n"
    problems = check(tmp_path, system)
    assert problems == [
        "prompts/shop/system.md.j2:2: a FAQ snippet has no field 'questoin' "
        "(did you mean 'question'?); its fields: question, answer, source, questions, tags, "
        "handoff"
    ]
    assert "botkit" not in problems[0] and "object" not in problems[0]


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(FaqSnippet)])
def test_every_field_of_a_faq_snippet_is_known(tmp_path: Path, field: str) -> None:
    # The checker reads the fields from the dataclass, so a new one (handoff) is known at once.
    system = (
        f"{{% for s in faq %}}{{{{ s.{field} }}}}{{% endfor %}}"
        f"{{% if faq %}}{{{{ (faq|first).{field} }}}}{{% endif %}}"
    )
    assert check(tmp_path, system) == []


def test_fields_of_every_context_object_are_checked(tmp_path: Path) -> None:
    system = (
        "{{ bot.name }} {{ bot.description }} {{ user.id }} {{ user.language }}\n"
        "{{ user.nmae }} {{ bot.nam }}\n"
        "{{ now.year }} {{ now.strftime('%A') }} {{ now.yaer }}\n"
        "{{ channel.upper() }} {{ channel.uper() }}\n"
        "{{ faq.question }} {{ faq[0].answer }} {{ faq[0].anwser }}\n"
        "{{ faq|map(attribute='questoin')|join(', ') }} {{ faq|selectattr('tag') }}\n"
    )
    assert [p.split(":", 1)[1] for p in check(tmp_path, system)] == [
        "2: user has no field 'nmae' (did you mean 'name'?); its fields: id, name, language",
        "2: bot has no field 'nam' (did you mean 'name'?); its fields: name, description, handoff",
        "3: a datetime value has no attribute 'yaer' (did you mean 'year'?)",
        "4: a str value has no attribute 'uper' (did you mean 'upper'?)",
        "5: 'faq' is a list and has no attribute 'question': loop over it with {% for %}",
        "5: a FAQ snippet has no field 'anwser' (did you mean 'answer'?); "
        "its fields: question, answer, source, questions, tags, handoff",
        "6: a FAQ snippet has no field 'questoin' (did you mean 'question'?); "
        "its fields: question, answer, source, questions, tags, handoff",
        "6: a FAQ snippet has no field 'tag' (did you mean 'tags'?); "
        "its fields: question, answer, source, questions, tags, handoff",
    ]


def test_what_a_template_sets_loops_defines_and_imports_is_known(tmp_path: Path) -> None:
    system = """\
{% import 'macros.md.j2' as m %}
{% from 'macros.md.j2' import bullet as b, shout %}
{% set ns = namespace(found=false) %}
{% for snippet in faq if snippet.tags %}
  {{ loop.index }}. {{ snippet.question }}{% set ns.found = true %}
  {% for q in snippet.questions %}{{ q.lower() }}{% endfor %}
{% endfor %}
{% set intro %}Hi {{ user.name or 'there' }}{% endset %}{{ intro }}
{% with who = bot.name %}{{ who }}{% endwith %}
{% macro row(label, value='-') %}{{ label }}: {{ value }} {{ caller('v') }}{% endmacro %}
{% call(x) row('a') %}{{ x }}{% endcall %}
{{ m.bullet('x') }} {{ b('y') }} {{ shout('z') }}
{% for key, value in vars.items() %}{{ key }}={{ value }}{% endfor %}
{% for key in vars %}{{ key.upper() }}{% endfor %}
{% if vars.optional is defined %}{{ vars.optional }}{% endif %}
{% if agent is not defined %}no agent{% else %}{{ agent.name }}{% endif %}
{{ vars.greeting | default('Hello') }} {{ range(3) | list }} {{ ns.found }}
{% include 'tone.md.j2' %}
"""
    files = {
        "macros.md.j2": "{% macro bullet(t) %}- {{ t }}{% endmacro %}"
        "{% macro shout(t) %}{{ t | upper }}{% endmacro %}",
        "tone.md.j2": "Sign as {{ who_signs | default(bot.name) }}; {{ intro }}.",
    }
    assert check(tmp_path, system, files=files) == []


def test_an_included_template_sees_the_includers_names_and_reports_its_own_lines(
    tmp_path: Path,
) -> None:
    system = "{% for snippet in faq %}{% include 'item.md.j2' %}{% endfor %}\n"
    files = {"item.md.j2": "Q: {{ snippet.question }}\nA: {{ snippet.answr }}\n{{ nope }}\n"}
    assert check(tmp_path, system, files=files) == [
        "prompts/shop/item.md.j2:2: a FAQ snippet has no field 'answr' (did you mean 'answer'?); "
        "its fields: question, answer, source, questions, tags, handoff",
        "prompts/shop/item.md.j2:3: 'nope' is undefined",
    ]


def test_a_template_nobody_includes_is_checked_on_its_own(tmp_path: Path) -> None:
    files = {"partials/unused.md.j2": "{{ user.name }}\n{{ usr.name }}\n"}
    assert check(tmp_path, "Hi", files=files) == [
        "prompts/shop/partials/unused.md.j2:2: 'usr' is undefined (did you mean 'user'?)"
    ]


def test_optional_templates_are_checked(tmp_path: Path) -> None:
    files = {"welcome.md.j2": "Hi {{ user.name }}", "fallback.md.j2": "Write to {{ vars.mail }}"}
    assert check(tmp_path, "Hi", files=files) == [
        "prompts/shop/fallback.md.j2:1: vars has no key 'mail'; "
        "bots/shop.toml [vars] has: company, support_email"
    ]


def test_only_handoff_templates_know_the_agent(tmp_path: Path) -> None:
    files = {
        "handoff_joined.md.j2": "{{ agent.name }} from {{ vars.company }} is here.",
        "handoff_resolved.md.j2": "{{ agent.nmae }} closed this.",
    }
    assert check(tmp_path, "{{ agent.name }}", files=files) == [
        "prompts/shop/handoff_resolved.md.j2:1: agent has no field 'nmae' "
        "(did you mean 'name'?); its fields: name",
        "prompts/shop/system.md.j2:1: 'agent' is undefined: "
        "only templates named handoff….md.j2 know the agent",
    ]


def test_an_imported_macro_sees_the_context_only_when_imported_with_it(tmp_path: Path) -> None:
    files = {"m.md.j2": "{% macro greet() %}Hi {{ user.name }}{% endmacro %}"}
    without = "{% import 'm.md.j2' as m %}{{ m.greet() }}"
    assert check(tmp_path, without, files=files) == [
        "prompts/shop/m.md.j2:1: 'user' is undefined here: imported templates see only "
        "their own names; import it 'with context'"
    ]
    assert check(tmp_path, "{% import 'm.md.j2' as m with context %}", files=files) == []


def test_unknown_filters_and_tests_in_branches_are_found(tmp_path: Path) -> None:
    # Jinja reports an unknown filter at compile time only outside conditionals.
    system = "{% if user.name %}{{ user.name | uper }}{% endif %}\n{% if x is defind %}{% endif %}"
    assert check(tmp_path, system) == [
        "prompts/shop/system.md.j2:1: unknown filter 'uper' (did you mean 'upper'?)",
        "prompts/shop/system.md.j2:2: unknown test 'defind' (did you mean 'defined'?)",
        "prompts/shop/system.md.j2:2: 'x' is undefined",
    ]


def test_a_missing_include_and_unsafe_attributes_are_reported(tmp_path: Path) -> None:
    system = "{% if user.name %}{% include 'nope.md.j2' %}{% endif %}\n{{ bot.__class__ }}"
    assert check(tmp_path, system) == [
        "prompts/shop/system.md.j2:1: included template not found: nope.md.j2",
        "prompts/shop/system.md.j2:2: '__class__' is not allowed: "
        "the sandbox blocks names starting with '_'",
    ]


def test_a_syntax_error_in_a_partial_is_reported_with_its_line(tmp_path: Path) -> None:
    files = {"part.md.j2": "ok\n{% if %}\n"}
    problems = check(tmp_path, "{% include 'part.md.j2' %}", files=files)
    assert len(problems) == 1 and problems[0].startswith("prompts/shop/part.md.j2:2: ")


def test_the_demo_bot_and_the_scaffold_are_clean(tmp_path: Path) -> None:
    from botkit.scaffold import create_bot

    repo = Path(__file__).resolve().parents[2]
    assert BotHome(repo).check("nimbus") == []
    create_bot(BotHome(tmp_path), "acme")
    assert BotHome(tmp_path).check("acme") == []


def test_a_macro_sees_what_the_template_sets_after_it(tmp_path: Path) -> None:
    # A macro's body runs when it is called: Jinja renders this one as "hi".
    system = (
        "{% macro greet() %}{{ greeting }} {{ later_typo }}{% endmacro %}\n"
        "{% set greeting = 'hi' %}{{ greet() }}\n"
        "{% for s in faq %}{% set inner = 1 %}{% endfor %}"
        "{% macro late() %}{{ inner }}{% endmacro %}"
    )
    assert check(tmp_path, system) == [
        "prompts/shop/system.md.j2:1: 'later_typo' is undefined",
        "prompts/shop/system.md.j2:3: 'inner' is undefined (did you mean 'joiner'?)",
    ]
