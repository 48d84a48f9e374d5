"""The README's examples are real: its TOML blocks are valid bot settings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from botkit.settings import BotSettings

README = Path(__file__).resolve().parent.parent / "README.md"
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_readme_has_settings_examples() -> None:
    assert len(TOML_BLOCKS) >= 2


@pytest.mark.parametrize("block", TOML_BLOCKS)
def test_each_toml_example_is_valid_bot_settings(block: str) -> None:
    BotSettings.model_validate(tomllib.loads(block))


YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_readmes_test_cases_are_a_valid_case_file(tmp_path: Path) -> None:
    from botkit.casebook import SnippetNames, load_cases
    from botkit.prompting.faq import FaqSnippet

    [block] = YAML_BLOCKS
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "readme.yaml").write_text(block, "utf-8")
    names = SnippetNames([FaqSnippet("?", "!", f"faq/{n}.md") for n in ("hours", "refund")])
    cases, problems = load_cases(tmp_path, names)
    assert problems == [] and len(cases) == 2


def test_no_merge_conflict_markers_are_left_in_the_docs() -> None:
    for name in ("README.md", "DEVELOPERS.md", "CHANGELOG.md"):
        text = (README.parent / name).read_text(encoding="utf-8")
        markers = [line for line in text.splitlines() if line.startswith(("<<<<<<<", ">>>>>>>"))]
        assert markers == [], f"{name} has merge conflict markers"


PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


@pytest.mark.parametrize("block", PYTHON_BLOCKS)
def test_each_python_example_is_python(block: str) -> None:
    import ast

    compile(block, "README.md", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_bot_defined_in_code_in_the_readme_is_a_checked_bot() -> None:
    from botkit import BotDefinition

    [block] = [b for b in PYTHON_BLOCKS if "BotDefinition.from_values(" in b]
    names: dict[str, object] = {}
    exec(block, names)
    shop = names["shop"]
    assert isinstance(shop, BotDefinition)
    assert [s.source for s in shop.faq.snippets] == ["faq/hours.md", "faq/refund.md"]
