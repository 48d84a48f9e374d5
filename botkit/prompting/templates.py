"""A prompt folder's Jinja templates: compiled once, rendered in a sandbox.

`StrictUndefined` makes a misspelled variable fail loudly instead of rendering
empty, and every failure is reported as `file:line: message`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from botkit.errors import ConfigError, Problem

SYSTEM = "system.md.j2"

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


class PromptTemplates:
    """The system template and the optional ones (welcome, help, fallback, reset, limit,
    unsupported)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(folder),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        problems: list[Problem] = []
        self._templates: dict[str, jinja2.Template] = {}
        for name in ("system", *DEFAULTS):
            try:
                self._templates[name] = self._compile(name)
            except jinja2.TemplateSyntaxError as err:
                problems.append(Problem(self._path(err.name), err.message or str(err), err.lineno))
            except jinja2.TemplateNotFound:
                problems.append(
                    Problem(folder / SYSTEM, "missing: every bot needs a system prompt")
                )
        if problems:
            raise ConfigError(problems)

    def _compile(self, name: str) -> jinja2.Template:
        filename = f"{name}.md.j2"
        if name in DEFAULTS and not (self.folder / filename).is_file():
            return self._env.from_string(DEFAULTS[name])
        return self._env.get_template(filename)

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

    def render_default(self, name: str, context: Mapping[str, Any]) -> str:
        """The built-in text of an optional template, for when the folder's own fails."""
        return self._env.from_string(DEFAULTS[name]).render(context).strip()

    def description(self) -> str | None:
        """The first `{# … #}` comment of the system template, as a one-line description."""
        try:
            source = (self.folder / SYSTEM).read_text(encoding="utf-8")
        except OSError:
            return None
        return first_comment(source)

    def _path(self, name: str | None) -> Path:
        return self.folder / (name or SYSTEM)

    def _error(self, message: str, err: BaseException) -> ConfigError:
        path, line = _template_frame(err.__traceback__, self.folder)
        return ConfigError([Problem(path or self.folder / SYSTEM, message, line)])


def first_comment(source: str) -> str | None:
    match = _COMMENT.search(source)
    if match is None or not match[1].strip():
        return None
    return match[1].strip().splitlines()[0].strip()


def _template_frame(tb: TracebackType | None, folder: Path) -> tuple[Path | None, int | None]:
    """The innermost template line in a traceback (jinja rewrites frames to template lines)."""
    found: tuple[Path | None, int | None] = (None, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = (Path(filename), tb.tb_lineno)
        tb = tb.tb_next
    if found[0] is not None and not found[0].is_absolute():
        found = (folder / found[0], found[1])
    return found
