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
