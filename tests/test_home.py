from __future__ import annotations

from pathlib import Path

import pytest

from botkit.errors import ConfigError, UnknownBotError
from botkit.home import BotHome
from botkit.testing import faq_file, write_bot


def test_names_lists_prompt_folders(tmp_path: Path) -> None:
    write_bot(tmp_path, "b")
    write_bot(tmp_path, "a")
    (tmp_path / "prompts" / ".hidden").mkdir()
    assert BotHome(tmp_path).names() == ["a", "b"]
    assert BotHome(tmp_path / "nowhere").names() == []


def test_description_comes_from_settings_else_the_first_comment(tmp_path: Path) -> None:
    write_bot(
        tmp_path, "a", system="{# From the template #}\nHi", settings='description = "From TOML"\n'
    )
    write_bot(tmp_path, "b", system="{# From the template #}\nHi")
    home = BotHome(tmp_path)
    assert home.describe("a") == "From TOML"
    assert home.describe("b") == "From the template"
    assert home.load("b").description == "From the template"


def test_an_unknown_bot_names_the_folder_and_the_known_bots(tmp_path: Path) -> None:
    write_bot(tmp_path, "shop")
    with pytest.raises(
        UnknownBotError, match=r"unknown bot 'shp': there is no folder prompts/shp/.*shop"
    ):
        BotHome(tmp_path).load("shp")
    with pytest.raises(UnknownBotError):
        BotHome(tmp_path).load("../etc")


def test_every_problem_of_a_bot_is_reported_at_once(tmp_path: Path) -> None:
    write_bot(
        tmp_path,
        "b",
        system="{% if %}",
        faq={"a.md": "no front matter", "b.md": faq_file("Fine?", "Yes.")},
        settings="colour = 'red'\n",
    )
    with pytest.raises(ConfigError) as caught:
        BotHome(tmp_path).load("b")
    files = sorted(p.path.name for p in caught.value.problems)
    assert files == ["a.md", "b.toml", "system.md.j2"]
