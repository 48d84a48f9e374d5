"""The bot home: `prompts/NAME/` folders and their optional `bots/NAME.toml` settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from botkit.errors import ConfigError, Problem, UnknownBotError
from botkit.prompting.embeddings import EmbeddingsUnavailable, SentenceEncoder
from botkit.prompting.faq import load_faq
from botkit.prompting.retrieval import FaqIndex
from botkit.prompting.templates import PromptTemplates, first_comment
from botkit.settings import BotSettings, load_bot_settings

BOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class BotDefinition:
    """Everything a bot's files define, loaded and checked once."""

    name: str
    description: str
    folder: Path
    settings: BotSettings
    templates: PromptTemplates
    faq: FaqIndex


class BotHome:
    """The folder holding `prompts/` and `bots/`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.prompts = path / "prompts"
        self.bots = path / "bots"

    def names(self) -> list[str]:
        if not self.prompts.is_dir():
            return []
        return sorted(
            p.name for p in self.prompts.iterdir() if p.is_dir() and BOT_NAME.match(p.name)
        )

    def settings_path(self, name: str) -> Path:
        return self.bots / f"{name}.toml"

    def describe(self, name: str) -> str:
        """A one-line description for `botkit list`, even for a bot that fails to load."""
        try:
            description = load_bot_settings(self.settings_path(name)).description
        except ConfigError:
            description = None
        if description:
            return description.strip().splitlines()[0]
        try:
            source = (self.prompts / name / "system.md.j2").read_text(encoding="utf-8")
        except OSError:
            return "(no system.md.j2)"
        return first_comment(source) or ""

    def load(self, name: str) -> BotDefinition:
        """Load a bot, or raise `ConfigError` listing every problem in its files."""
        folder = self.prompts / name
        if not BOT_NAME.match(name) or not folder.is_dir():
            known = ", ".join(self.names()) or "none"
            raise UnknownBotError(
                [
                    Problem(
                        folder,
                        f"unknown bot '{name}': there is no folder prompts/{name}/ "
                        f"in {self.path.resolve()} (bots here: {known})",
                    )
                ]
            )
        problems: list[Problem] = []
        settings = BotSettings()
        try:
            settings = load_bot_settings(self.settings_path(name))
        except ConfigError as err:
            problems += err.problems
        templates = None
        try:
            templates = PromptTemplates(folder)
        except ConfigError as err:
            problems += err.problems
        snippets, faq_problems = load_faq(folder)
        problems += faq_problems
        encoder = None
        if settings.faq_retriever == "hybrid":
            model = settings.faq_embedding_model
            try:
                encoder = self._encoder(model)
            except EmbeddingsUnavailable as err:
                key = "faq_embedding_model" if model else "faq_retriever"
                problems.append(self._setting_problem(name, key, str(err)))
        if problems or templates is None:
            raise ConfigError(problems)
        return BotDefinition(
            name=name,
            description=settings.description or templates.description() or "",
            folder=folder,
            settings=settings,
            templates=templates,
            faq=FaqIndex(snippets, language=settings.faq_language, encoder=encoder),
        )

    def _encoder(self, model: str | None) -> SentenceEncoder:
        """The hybrid retriever's model: a folder relative to the home, or a package."""
        from botkit.prompting.embeddings import load_encoder, model_folder

        where = model if model is None or model.isidentifier() else self.path / model
        return load_encoder(model_folder(where))

    def _setting_problem(self, name: str, key: str, message: str) -> Problem:
        path = self.settings_path(name)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        line = next((i for i, text in enumerate(lines, 1) if text.lstrip().startswith(key)), None)
        return Problem(path, f"{key}: {message}", line)

    def load_checked(self, name: str) -> BotDefinition:
        """Load a bot and render its templates with sample contexts, as start-up does."""
        from botkit.prompting.composer import PromptComposer

        bot = self.load(name)
        if problems := PromptComposer(bot).check():
            raise ConfigError(problems)
        return bot

    def check(self, name: str) -> list[Problem]:
        """Every problem `botkit check` reports for one bot."""
        try:
            self.load_checked(name)
        except ConfigError as err:
            return err.problems
        return []
