"""A prompt folder's Jinja templates: compiled once, rendered in a sandbox.

`StrictUndefined` makes a misspelled variable fail loudly instead of rendering
empty, and every failure is reported as `file:line: message`, the path shown
relative to the bot home. `botkit check` finds such mistakes before a user does
(`botkit.prompting.checker`); these messages are for what slips through.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from botkit.errors import ConfigError, Problem

logger = logging.getLogger(__name__)

SYSTEM = "system.md.j2"
SUFFIX = ".md.j2"

# Optional templates and what a bot says when its folder has none.
DEFAULTS: dict[str, str] = {
    "welcome": (
        "Hi{% if user.name %} {{ user.name }}{% endif %}! I'm the {{ bot.name }} assistant. "
        "Ask me a question, or type /help to see what I can do."
    ),
    "help": (
        "Ask me a question in your own words and I'll do my best to answer.\n\n"
        "/start – show the welcome message\n"
        "/help – show this help\n"
        "/reset – forget our conversation and start fresh"
        "{% if bot.handoff %}\n/human – talk to a person{% endif %}"
    ),
    "fallback": (
        "I'm sorry, I don't have a good answer to that. "
        "A member of our support team can help: please leave your question "
        "and how to reach you, and a person will get back to you."
    ),
    "reset": "Done: I've forgotten our conversation. What can I help you with?",
    "limit": (
        "You've reached today's limit for this assistant. Please try again tomorrow, "
        "or contact our support team if it can't wait."
    ),
    "unsupported": (
        "Sorry, I can only read text messages. Please type your question and I'll help."
    ),
    "handoff": (
        "I'm handing you over to a person from our team. They'll reply here as soon as "
        "they can: you can keep writing in the meantime."
    ),
    "handoff_joined": "{{ agent.name }} from our team has joined the conversation.",
    "handoff_resolved": (
        "{{ agent.name or 'Our team' }} has finished helping you: you're back with the "
        "{{ bot.name }} assistant. Ask me anything."
    ),
    "handoff_timeout": (
        "Sorry, nobody from our team is free right now. I'm back to help as best I can; "
        "for anything I can't answer, please leave your question and how to reach you."
    ),
}
"""`handoff_joined` and `handoff_resolved` also know `agent.name` (None when unknown)."""

_COMMENT = re.compile(r"\{#-?\s*(.*?)\s*-?#\}", re.DOTALL)

# What a template author calls the objects of the context, instead of their class names.
_LABELS = {"FaqSnippet": "a FAQ snippet", "UserInfo": "user", "BotInfo": "bot", "dict": "the table"}


class PromptTemplates:
    """The system template and the optional ones (welcome, help, fallback, reset, limit,
    unsupported).

    `home` is the bot home: paths in error messages are shown relative to it. With
    `sources` (file name → text, for a bot defined in code) the templates are those
    texts, and `folder` only names them in messages (`<shop>/system.md.j2:3: …`).
    """

    def __init__(
        self, folder: Path, *, home: Path | None = None, sources: Mapping[str, str] | None = None
    ) -> None:
        self.folder = folder
        self.home = home
        self._sources = dict(sources) if sources is not None else None
        loader: jinja2.BaseLoader = (
            jinja2.FileSystemLoader(folder)
            if self._sources is None
            else _SourceLoader(folder, self._sources)
        )
        self.environment = SandboxedEnvironment(
            loader=loader,
            undefined=_Undefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._defaults = {
            name: self.environment.from_string(source) for name, source in DEFAULTS.items()
        }
        problems: list[Problem] = []
        self._templates: dict[str, jinja2.Template] = {}
        for name in ("system", *DEFAULTS):
            try:
                self._templates[name] = self._compile(name)
            except jinja2.TemplateSyntaxError as err:
                problems.append(Problem(self._path(err.name), err.message or str(err), err.lineno))
            except jinja2.TemplateNotFound:
                problems.append(
                    Problem(self.shown(folder / SYSTEM), "missing: every bot needs a system prompt")
                )
        if problems:
            raise ConfigError(problems)

    def _compile(self, name: str) -> jinja2.Template:
        filename = f"{name}{SUFFIX}"
        if name in DEFAULTS and not self.has(filename):
            return self._defaults[name]
        return self.environment.get_template(filename)

    def has(self, filename: str) -> bool:
        """Whether the folder has this template file (a name as `{% include %}` takes it)."""
        if self._sources is not None:
            return filename in self._sources
        return (self.folder / filename).is_file()

    def files(self) -> list[str]:
        """Every template file of the folder, by its name for `{% include %}`."""
        if self._sources is not None:
            return sorted(name for name in self._sources if name.endswith(".j2"))
        return sorted(
            path.relative_to(self.folder).as_posix()
            for path in self.folder.rglob("*.j2")
            if path.is_file()
        )

    def shown(self, path: Path) -> Path:
        """`path` as messages show it: relative to the bot home when it lies inside."""
        if self.home is None:
            return path
        try:
            return path.relative_to(self.home)
        except ValueError:
            return path

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Render one template; any failure becomes a `ConfigError` naming file and line."""
        template = self._templates[name]
        try:
            return template.render(context).strip()
        except jinja2.TemplateNotFound as err:
            raise self._error(f"included template not found: {err.name}", err) from err
        except jinja2.TemplateSyntaxError as err:  # in an included template
            problem = Problem(self._path(err.name), err.message or str(err), err.lineno)
            raise ConfigError([problem]) from err
        except jinja2.TemplateError as err:
            raise self._error(err.message or str(err), err) from err
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as err:
            raise self._error(f"{type(err).__name__}: {err}", err) from err

    def render_or_default(self, name: str, context: Mapping[str, Any]) -> str:
        """Render an optional template; when it fails at run time, log the problem
        (file:line) and render the built-in text instead, so the customer still gets
        a sensible answer. Only the system template has no default: its error is raised.
        """
        try:
            return self.render(name, context)
        except ConfigError as err:
            if name not in self._defaults:
                raise
            for problem in err.problems:
                logger.error("%s (answered with the built-in %s text)", problem, name)
            return self._defaults[name].render(context).strip()

    def description(self) -> str | None:
        """The first `{# … #}` comment of the system template, as a one-line description."""
        try:
            if self._sources is not None:
                source = self._sources[SYSTEM]
            else:
                source = (self.folder / SYSTEM).read_text(encoding="utf-8")
        except (OSError, KeyError):
            return None
        return first_comment(source)

    def _path(self, name: str | None) -> Path:
        return self.shown(self.folder / (name or SYSTEM))

    def _error(self, message: str, err: BaseException) -> ConfigError:
        path, line = _template_frame(err.__traceback__)
        return ConfigError([Problem(self.shown(path or self.folder / SYSTEM), message, line)])


def first_comment(source: str) -> str | None:
    match = _COMMENT.search(source)
    if match is None or not match[1].strip():
        return None
    return match[1].strip().splitlines()[0].strip()


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or ''."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe_missing(obj: object, name: object) -> str:
    """Why `obj.name` (or `obj[name]`) is undefined, in the words of the template context."""
    if isinstance(obj, list | tuple):
        size = f"{len(obj)} item{'' if len(obj) == 1 else 's'}"
        return f"the list has no element {name!r} (it has {size})"
    name = str(name)
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        known = f"; it has: {', '.join(keys)}" if keys else "; it is empty"
        return f"{_LABELS['dict']} has no key '{name}'{did_you_mean(name, keys)}{known}"
    kind = type(obj).__name__
    if dataclasses.is_dataclass(obj):
        fields = [f.name for f in dataclasses.fields(obj)]
        label = _LABELS.get(kind, kind)
        return (
            f"{label} has no field '{name}'{did_you_mean(name, fields)}; "
            f"its fields: {', '.join(fields)}"
        )
    public = [a for a in dir(obj) if not a.startswith("_")]
    return f"a {kind} value has no attribute '{name}'{did_you_mean(name, public)}"


class _SourceLoader(jinja2.BaseLoader):
    """Templates from texts, each named as a file of `folder` would be, so that a failure's
    traceback (and so its message) names the template and line."""

    def __init__(self, folder: Path, sources: Mapping[str, str]) -> None:
        self._folder = folder
        self._sources = sources

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in self._sources:
            raise jinja2.TemplateNotFound(template)
        return self._sources[template], str(self._folder / template), lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self._sources)


class _Undefined(jinja2.StrictUndefined):
    """`StrictUndefined` whose message names what a template author sees ("a FAQ snippet
    has no field 'questoin'"), not a Python class path."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if self._undefined_hint is None and obj is not jinja2.utils.missing:
            return describe_missing(obj, self._undefined_name)
        return str(super()._undefined_message)


def _template_frame(tb: TracebackType | None) -> tuple[Path | None, int | None]:
    """The innermost template line in a traceback (jinja rewrites frames to template lines).

    The frame's file name is the loader's: the folder joined with the template's
    name, so it is already a path from where the process runs.
    """
    found: tuple[Path | None, int | None] = (None, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = (Path(filename), tb.tb_lineno)
        tb = tb.tb_next
    return found
