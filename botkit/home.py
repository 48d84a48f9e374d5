"""The bot home: `prompts/NAME/` folders and their optional `bots/NAME.toml` settings; or a
bot defined in code (`BotDefinition.from_values`), checked the same way."""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botkit.errors import ConfigError, Problem, UnknownBotError
from botkit.prompting.embeddings import EmbeddingsUnavailable, SentenceEncoder
from botkit.prompting.faq import (
    FaqSnippet,
    SnippetError,
    load_faq,
    parse_snippet,
    snippet_from_values,
)
from botkit.prompting.retrieval import FaqIndex
from botkit.prompting.templates import SUFFIX, SYSTEM, PromptTemplates, first_comment
from botkit.settings import BotSettings, bot_settings_from_values, load_bot_settings

if TYPE_CHECKING:
    from botkit.casebook import Case

logger = logging.getLogger(__name__)

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

    @classmethod
    def from_values(
        cls,
        name: str,
        *,
        system: str,
        faq: Mapping[str, str | Mapping[str, Any]] | None = None,
        settings: BotSettings | Mapping[str, Any] | None = None,
        templates: Mapping[str, str] | None = None,
    ) -> BotDefinition:
        """A bot defined in code, as its folder would define it, and checked as `botkit check`
        checks a folder (`ConfigError` listing every problem).

        `system` is the text of `system.md.j2`; `faq` names each snippet (its file under
        `faq/`, without `.md`) and gives it as a file's text (front matter, then the
        answer) or as values (`question`, `answer`, and optionally `questions`, `tags`,
        `handoff`); `settings` are the keys of `bots/NAME.toml`; `templates` the other
        templates by name (`welcome`, `help`, `fallback`, …, or any file to include).
        Errors name them as files of a folder `<NAME>`: `<shop>/system.md.j2:3: …`.
        """
        folder = Path(f"<{name}>")
        if not BOT_NAME.match(name):
            message = (
                "a bot's name is letters, digits, '-' and '_', starting with a letter or digit"
            )
            raise ConfigError([Problem(folder, f"{name!r} is not a bot name: {message}")])
        problems: list[Problem] = []
        bot_settings = BotSettings()
        if isinstance(settings, BotSettings):
            bot_settings = settings
        elif settings is not None:
            try:
                bot_settings = bot_settings_from_values(settings, folder / "settings")
            except ConfigError as err:
                problems += err.problems
        sources = {SYSTEM: system}
        for template, text in (templates or {}).items():
            sources[template if template.endswith(".j2") else f"{template}{SUFFIX}"] = text
        built = None
        try:
            built = PromptTemplates(folder, sources=sources)
        except ConfigError as err:
            problems += err.problems
        snippets = []
        for snippet_name, entry in (faq or {}).items():
            source = f"faq/{snippet_name}.md"
            try:
                snippets.append(_snippet_entry(entry, source))
            except SnippetError as err:
                problems.append(Problem(folder / source, err.message, err.line))
        if problems or built is None:
            raise ConfigError(problems)
        bot = cls(
            name=name,
            description=bot_settings.description or built.description() or "",
            folder=folder,
            settings=bot_settings,
            templates=built,
            faq=FaqIndex(snippets, language=bot_settings.faq_language),
        )
        if problems := check(bot, vars_source=f"{(folder / 'settings').as_posix()} vars"):
            raise ConfigError(problems)
        return bot


def _snippet_entry(entry: str | Mapping[str, Any], source: str) -> FaqSnippet:
    if isinstance(entry, str):
        return parse_snippet(entry, source)
    if isinstance(entry, Mapping):
        return snippet_from_values(entry, source)
    raise SnippetError(f"expected a file's text or a mapping of values, not {type(entry).__name__}")


def check(bot: BotDefinition, *, vars_source: str) -> list[Problem]:
    """What `botkit check` finds in a loaded bot's templates: every name in every branch
    against the context, then a render with sample contexts."""
    from botkit.prompting.checker import check_templates
    from botkit.prompting.composer import PromptComposer
    from botkit.prompting.shapes import TemplateContext

    context = TemplateContext(vars=bot.settings.vars, vars_source=vars_source)
    return check_templates(bot.templates, context) or PromptComposer(bot).check()


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

    def orphans(self) -> list[Problem]:
        """`bots/NAME.toml` files with no `prompts/NAME/`: a misspelt name, else ignored."""
        if not self.bots.is_dir():
            return []
        names = self.names()
        problems = []
        for path in sorted(self.bots.glob("*.toml")):
            if path.stem in names:
                continue
            message = f"no prompt folder prompts/{path.stem}/, so no bot uses these settings"
            if near := difflib.get_close_matches(path.stem, names, n=1):
                message += f" (did you mean bots/{near[0]}.toml, for prompts/{near[0]}/?)"
            problems.append(Problem(path, message))
        return problems

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

    def shown(self, path: Path) -> Path:
        """`path` as messages show it: relative to the home when it lies inside."""
        try:
            return path.relative_to(self.path)
        except ValueError:
            return path

    def _shown(self, problems: list[Problem]) -> list[Problem]:
        return [
            Problem(self.shown(p.path), p.message, p.line) if isinstance(p.path, Path) else p
            for p in problems
        ]

    def load(self, name: str) -> BotDefinition:
        """Load a bot, or raise `ConfigError` listing every problem in its files."""
        folder = self.prompts / name
        if not BOT_NAME.match(name) or not folder.is_dir():
            known = ", ".join(self.names()) or "none"
            raise UnknownBotError(
                [
                    Problem(
                        self.shown(folder),
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
            templates = PromptTemplates(folder, home=self.path)
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
            raise ConfigError(self._shown(problems))
        logger.debug(
            "bot %s: %d FAQ snippets (%s retriever), from %s",
            name,
            len(snippets),
            settings.faq_retriever,
            self.shown(folder),
        )
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
        """Load a bot and check its templates, as start-up does: every name in every
        branch against the context, then a render with sample contexts."""
        bot = self.load(name)
        vars_source = f"{self.shown(self.settings_path(name)).as_posix()} [vars]"
        if problems := check(bot, vars_source=vars_source):
            raise ConfigError(self._shown(problems))
        return bot

    def cases(self, bot: BotDefinition) -> tuple[list[Case], list[Problem]]:
        """The bot's conversation cases (`tests/*.yaml`), and every mistake in their files."""
        from botkit.casebook import SnippetNames, load_cases

        return load_cases(bot.folder, SnippetNames(bot.faq.snippets), shown=self.shown(bot.folder))

    def check(self, name: str) -> list[Problem]:
        """Every problem `botkit check` reports for one bot."""
        try:
            bot = self.load_checked(name)
        except ConfigError as err:
            return err.problems
        return self.cases(bot)[1]
