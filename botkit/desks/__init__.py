"""Desks: where people answer the conversations bots hand over.

    slack     a Slack channel: each handoff a message with Take and Resolve buttons,
              its thread the conversation (botkit.desks.slack)
    webhook   any helpdesk: signed JSON events out, the handoffs API in
              (botkit.desks.webhook)

A desk module has two factories: `desk(app) -> Desk`, how handoffs are shown to
people (used by `botkit.handoff.Handoffs`), and `serve(app, options) -> Channel`,
how people's actions come back (routes on the shared HTTP server, or a socket).
The pipeline never imports a desk: it asks the store who handles a conversation.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from botkit.errors import ConfigError, Problem
from botkit.handoff import Desk

__all__ = ["DESKS", "Desk", "load_desk"]

DESKS = {"slack": "botkit.desks.slack", "webhook": "botkit.desks.webhook"}


def load_desk(name: str) -> ModuleType:
    """A desk's module; a missing extra fails with the pip command that fixes it."""
    try:
        return import_module(DESKS[name])
    except ModuleNotFoundError as err:
        if err.name and not err.name.startswith("botkit"):
            message = f"the {name} desk needs {err.name}: pip install 'botkit[{name}]'"
            raise ConfigError([Problem("[handoff] desk", message)]) from err
        raise
