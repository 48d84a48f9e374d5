"""Every exception botkit raises on purpose.

    BotkitError
    ├── ConfigError          a bot author's mistake: settings, bots/NAME.toml, a prompt
    │   │                    folder; carries one `Problem` (file, line, message) per fault
    │   └── UnknownBotError  no prompts/NAME/ folder in the bot home
    └── StoreError           the conversation store cannot be opened or used

Errors are translated where they cross a boundary (`raise ... from err`), so a
caller never has to know about jinja2, yaml or sqlite3 exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class BotkitError(Exception):
    """Base class of all botkit errors."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One fault in a bot's files (or a setting, or an option), printed as `file:line: message`."""

    path: Path | str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class ConfigError(BotkitError):
    """Settings or a bot's files are invalid; `problems` lists every fault found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownBotError(ConfigError):
    """The bot home has no prompt folder of that name."""


class StoreError(BotkitError):
    """The conversation store is unreachable, corrupt or locked."""
